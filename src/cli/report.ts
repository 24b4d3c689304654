// mopt report: an HTML page with SVG plots for the runs in a directory (src/report/render.ts).

import type { Command } from 'commander';
import { writeReport } from '../report/render.js';
import { emit } from './common.js';

export function registerReport(program: Command): void {
  program
    .command('report')
    .argument('<dir>', 'a run directory: mopt train --out, mopt quantize --out (also --format all)')
    .description('Render the runs in DIR as one self-contained HTML page (DIR/report-all.html) with SVG plots beside it: loss curves, per-format perplexity / KL / size bars, per-layer SQNR heatmaps.')
    .option('--out <file>', 'HTML file to write (default DIR/report-all.html)')
    .option('--json', 'print {path, sections} as JSON')
    .action((dir: string, o: { out?: string; json?: boolean }) => {
      const r = writeReport(dir, o.out);
      emit(o.json === true, r, `wrote ${r.path} (${r.sections.join(', ')})`);
    });
}
