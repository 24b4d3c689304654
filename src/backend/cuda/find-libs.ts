// Locating the CUDA shared libraries: CUDA_HOME, /usr/local/cuda*, LD_LIBRARY_PATH, and NVIDIA's Python
// wheels (site-packages/nvidia/*/lib). The driver (libcuda) comes with the NVIDIA driver install and is
// found by the system loader. When something is missing the message says what to install.

import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import koffi, { type LibraryHandle } from 'koffi';
import { UserError } from '../../util/errors.js';

function cudaRoots(): string[] {
  const roots: string[] = [];
  if (process.env.CUDA_HOME) roots.push(process.env.CUDA_HOME);
  if (process.env.CUDA_PATH) roots.push(process.env.CUDA_PATH);
  try {
    const local = readdirSync('/usr/local').filter((d) => d === 'cuda' || d.startsWith('cuda-'));
    // newest version first: cuda-13.0 before cuda-12.4; plain "cuda" (a symlink) last
    local.sort((a, b) => (a === 'cuda' ? 1 : b === 'cuda' ? -1 : b.localeCompare(a, undefined, { numeric: true })));
    roots.push(...local.map((d) => join('/usr/local', d)));
  } catch {
    // no /usr/local: nothing to add
  }
  return roots;
}

function libDirs(): string[] {
  const dirs: string[] = [];
  for (const r of cudaRoots()) dirs.push(join(r, 'lib64'), join(r, 'targets', 'x86_64-linux', 'lib'), join(r, 'lib'));
  for (const d of (process.env.LD_LIBRARY_PATH ?? '').split(':')) if (d) dirs.push(d);
  // pip wheels: nvidia-cuda-nvrtc-cu13, nvidia-cublas-cu13, ... install into site-packages/nvidia/<pkg>/lib
  for (const site of pythonSitePackages()) {
    const nv = join(site, 'nvidia');
    if (!existsSync(nv)) continue;
    for (const pkg of readdirSync(nv)) dirs.push(join(nv, pkg, 'lib'));
  }
  return [...new Set(dirs)].filter((d) => existsSync(d));
}

function pythonSitePackages(): string[] {
  const out: string[] = [];
  const bases = ['/usr/local/lib', '/usr/lib', join(process.env.HOME ?? '/root', '.local', 'lib'), '/opt/conda/lib'];
  if (process.env.VIRTUAL_ENV) bases.unshift(join(process.env.VIRTUAL_ENV, 'lib'));
  for (const b of bases) {
    if (!existsSync(b)) continue;
    for (const py of readdirSync(b).filter((d) => d.startsWith('python3'))) {
      for (const sp of ['site-packages', 'dist-packages']) {
        const p = join(b, py, sp);
        if (existsSync(p)) out.push(p);
      }
    }
  }
  return out;
}

/** Loads the first library whose file name matches one of `names` (exact or versioned). */
export function loadCudaLibrary(what: string, names: string[], install: string): LibraryHandle {
  const tried: string[] = [];
  for (const dir of libDirs()) {
    let files: string[];
    try {
      files = readdirSync(dir);
    } catch {
      continue;
    }
    for (const base of names) {
      const matches = files.filter((f) => f === base || f.startsWith(base + '.')).sort().reverse();
      for (const f of matches) {
        const p = join(dir, f);
        try {
          return koffi.load(p);
        } catch (e) {
          tried.push(`${p} (${e instanceof Error ? e.message : String(e)})`);
        }
      }
    }
  }
  // last resort: the system loader's own search path (ldconfig, rpath)
  for (const base of names) {
    try {
      return koffi.load(base);
    } catch {
      tried.push(base);
    }
  }
  throw new UserError(`CUDA is not usable: ${what} was not found (looked in CUDA_HOME, /usr/local/cuda*, LD_LIBRARY_PATH and Python nvidia/*/lib wheels); ${install}`);
}

/** Header folders for NVRTC (cuda_fp16.h, cuda_bf16.h, cuda_fp8.h) from the toolkits and wheels found. */
export function cudaIncludeDirs(): string[] {
  const dirs: string[] = [];
  for (const r of cudaRoots()) dirs.push(join(r, 'include'), join(r, 'targets', 'x86_64-linux', 'include'));
  for (const site of pythonSitePackages()) {
    const nv = join(site, 'nvidia');
    if (!existsSync(nv)) continue;
    for (const pkg of readdirSync(nv)) dirs.push(join(nv, pkg, 'include'));
  }
  return [...new Set(dirs)].filter((d) => existsSync(join(d, 'cuda_fp16.h')));
}
