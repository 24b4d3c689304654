// The report as a user opens it: report-all.html in headless Chromium (Debian's chromium package; .ci/run
// installs it). The page must load without console messages or uncaught errors, hold every plot as an SVG
// element, and screenshot as a full page that is not blank. A control page proves that the error check
// fires and that Chromium decodes mopt's PNG plots at their own size.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeReport } from '../../src/report/render.js';
import { colorCounts, decodePng } from './png-decode.js';

const CHROMIUM = process.env.MOPT_CHROMIUM ?? '/usr/bin/chromium';
const TIMEOUT_MS = 60_000;
const [WIDTH, HEIGHT] = [1200, 1600];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs Chromium headless on one page with a fresh profile. Without the background-networking flags it tries
 * to reach Google's services, which a closed network refuses; --disable-dev-shm-usage keeps a container's
 * small /dev/shm from crashing the renderer. The whole process group is killed after TIMEOUT_MS, so the test
 * cannot hang on a stuck browser.
 */
function chromium(page: string, extra: readonly string[]): Promise<Run> {
  const profile = mkdtempSync(join(tmpdir(), 'mopt-chromium-profile-'));
  const args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage', '--disable-crash-reporter', '--disable-breakpad', `--user-data-dir=${profile}`, '--enable-logging=stderr', '--v=0',
    `--window-size=${WIDTH},${HEIGHT}`, ...extra, pathToFileURL(page).href];
  return new Promise<Run>((resolve, reject) => {
    const child = spawn(CHROMIUM, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let [stdout, stderr] = ['', ''];
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    // the whole group, also when the browser exits on its own (helpers it started may outlive it)
    const killGroup = (): void => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    process.once('exit', killGroup);
    const timer = setTimeout(() => {
      killGroup();
      reject(new Error(`chromium did not finish within ${TIMEOUT_MS / 1000} s; stderr:\n${stderr.slice(-2000)}`));
    }, TIMEOUT_MS);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code) => {
      clearTimeout(timer);
      killGroup();
      process.removeListener('exit', killGroup);
      resolve({ code, stdout, stderr });
    });
  }).finally(() => rmSync(profile, { recursive: true, force: true }));
}

/** Lines the page itself logged (console.* and uncaught exceptions), as opposed to the browser's own noise (D-Bus, GPU probing). */
const pageMessages = (stderr: string): string[] => stderr.split('\n').filter((l) => /:CONSOLE[:(\]]|Uncaught/.test(l));

function writeRuns(dir: string): void {
  writeFileSync(join(dir, 'train-log.json'), JSON.stringify({
    summary: { steps: 6, valLoss: 3.2 },
    train: [1, 2, 3, 4, 5, 6].map((s) => ({ step: s, loss: 6 - s * 0.4 })),
    val: [{ step: 3, loss: 4.9 }, { step: 6, loss: 3.2 }],
  }));
  writeFileSync(join(dir, 'summary.json'), JSON.stringify({
    pplBefore: 4.5,
    rows: [
      { preset: 'fp8', algorithm: 'max', ppl: 4.49, pplChangePercent: -0.2, kl: 0.013, bytes: 360000, unquantized: 0 },
      { preset: 'nvfp4', algorithm: 'max', ppl: 5.3, pplChangePercent: 17.8, kl: 0.158, bytes: 450000, unquantized: 5 },
    ],
  }));
  mkdirSync(join(dir, 'int4'));
  const weights = [0, 1].flatMap((l) => ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj'].map((m, i) => ({
    name: `model.layers.${l}.${i < 4 ? 'self_attn' : 'mlp'}.${m}.weight_quantizer`, sqnrDb: 20 + l + i, bitsPerWeight: 4.25, elements: 4096,
  })));
  writeFileSync(join(dir, 'int4', 'report.json'), JSON.stringify({
    recipe: { preset: 'int4_awq', algorithm: 'awq_lite' },
    evaluation: { before: { ppl: 4.5, nll: 1.5, tokens: 63 }, after: { ppl: 4.9, nll: 1.59, tokens: 63 }, kl: { mean: 0.1, tokens: 64 } },
    size: { linearBitsPerWeight: 14.1 }, weights,
  }));
}

const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} not found (Debian: apt-get install chromium; .ci/run installs it; MOPT_CHROMIUM names another binary)`;

test('the report opens in headless Chromium without errors and screenshots as a full, non-blank page', { skip, timeout: 3 * TIMEOUT_MS }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mopt-report-chromium-'));
  try {
    writeRuns(dir);
    const report = writeReport(dir);
    const svgs = report.plots.filter((f) => f.endsWith('.svg')).length;
    assert.equal(svgs, 5, 'loss, ppl, kl, size, sqnr');

    const shot = join(dir, 'screenshot.png');
    const run = await chromium(report.path, ['--dump-dom', `--screenshot=${shot}`]);
    assert.equal(run.code, 0, `chromium exited with ${run.code}:\n${run.stderr.slice(-2000)}`);
    assert.deepEqual(pageMessages(run.stderr), [], 'the page logged messages or threw');
    assert.equal((run.stdout.match(/<svg[ >]/g) ?? []).length, svgs, 'every plot is an SVG element of the DOM');
    assert.equal((run.stdout.match(/<h2>/g) ?? []).length, 3, 'a section per run');

    const img = decodePng(readFileSync(shot));
    assert.deepEqual([img.width, img.height], [WIDTH, HEIGHT]);
    const counts = colorCounts(img);
    const nonWhite = 1 - (counts.get('#ffffff') ?? 0) / (WIDTH * HEIGHT);
    assert.ok(counts.size >= 20, `only ${counts.size} distinct colors`);
    assert.ok(nonWhite > 0.025, `only ${(100 * nonWhite).toFixed(2)}% of the pixels are not white`);
    assert.ok((counts.get('#2e86c1') ?? 0) > 2000, 'the bars are painted in the chart blue');
    assert.ok((counts.get('#eeeeee') ?? 0) > 500, 'the unquantized heatmap cells and table headers are gray');

    // Control: a page that logs each plot PNG's decoded size, then throws. The thrown error must be caught by
    // pageMessages (else the check above proves nothing), and Chromium must read every PNG at its size.
    const pngs = report.plots.filter((f) => f.endsWith('.png'));
    const control = join(dir, 'control.html');
    writeFileSync(control, `<!doctype html><html><body>${pngs.map((f) => `<img src="${f}">`).join('')}<script>
addEventListener('load', () => {
  for (const i of document.images) console.log('png ' + i.getAttribute('src') + ' ' + i.naturalWidth + 'x' + i.naturalHeight);
  notAFunction();
});
</script></body></html>`);
    const probe = await chromium(control, ['--dump-dom']);
    const lines = pageMessages(probe.stderr);
    assert.ok(lines.some((l) => l.includes('Uncaught ReferenceError')), `the uncaught error was not seen:\n${lines.join('\n')}`);
    for (const f of pngs) {
      const own = decodePng(readFileSync(join(dir, f)));
      assert.ok(lines.some((l) => l.includes(`png ${f} ${own.width}x${own.height}`)), `Chromium did not decode ${f} as ${own.width}x${own.height}:\n${lines.join('\n')}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
