// mopt report: an HTML page with SVG plots, plus PNG copies, for the runs in a directory (src/report/render.ts).

import type { Command } from 'commander';
import { writeReport } from '../report/render.js';
import { emit } from './common.js';

export function registerReport(program: Command): void {
  program
    .command('report')
    .argument('<dir>', 'a run directory: mopt train --out, mopt quantize --out (also --format all)')
    .description('Render the runs in DIR as one self-contained HTML page (DIR/report-all.html) with SVG and PNG plots beside it (drawn without a browser): loss curves, per-format perplexity / KL / size bars, per-layer SQNR heatmaps.')
    .option('--out <file>', 'HTML file to write (default DIR/report-all.html)')
    .option('--no-png', 'write the plots as SVG only (PNG copies, 2x pixel ratio, are written by default)')
    .option('--json', 'print {path, sections, plots} as JSON')
    .action((dir: string, o: { out?: string; png: boolean; json?: boolean }) => {
      const r = writeReport(dir, o.out, { png: o.png });
      emit(o.json === true, r, `wrote ${r.path} and ${r.plots.length} plot files (${r.sections.join(', ')})`);
    });
}
