// Run-time compilation of the .cu kernel sources with NVRTC for the GPU's own architecture. CUBINs are
// cached on disk under a hash of (source, options, arch, NVRTC version), so each kernel file compiles
// once per machine.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { loadCudaLibrary, cudaIncludeDirs } from './find-libs.js';

type Fn = (...args: unknown[]) => number;

export class NvrtcError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NvrtcError';
  }
}

export class Nvrtc {
  private readonly f: Record<string, Fn> = {};
  readonly version: string;
  private readonly cacheDir: string;

  constructor() {
    const lib = loadCudaLibrary('the NVRTC compiler library libnvrtc.so', ['libnvrtc.so'], 'install the CUDA toolkit (or the nvidia-cuda-nvrtc wheel) or run with --device cpu');
    const decls: Record<string, string> = {
      nvrtcVersion: 'int nvrtcVersion(_Out_ int *major, _Out_ int *minor)',
      nvrtcGetErrorString: 'const char *nvrtcGetErrorString(int result)',
      nvrtcCreateProgram: 'int nvrtcCreateProgram(_Out_ void **prog, const char *src, const char *name, int numHeaders, void *headers, void *includeNames)',
      nvrtcCompileProgram: 'int nvrtcCompileProgram(void *prog, int numOptions, const char **options)',
      nvrtcGetProgramLogSize: 'int nvrtcGetProgramLogSize(void *prog, _Out_ uint64_t *size)',
      nvrtcGetProgramLog: 'int nvrtcGetProgramLog(void *prog, _Out_ uint8_t *log)',
      nvrtcGetCUBINSize: 'int nvrtcGetCUBINSize(void *prog, _Out_ uint64_t *size)',
      nvrtcGetCUBIN: 'int nvrtcGetCUBIN(void *prog, _Out_ uint8_t *cubin)',
      nvrtcDestroyProgram: 'int nvrtcDestroyProgram(_Inout_ void **prog)',
    };
    for (const [name, decl] of Object.entries(decls)) this.f[name] = lib.func(decl) as Fn;
    const major = [0];
    const minor = [0];
    this.check('nvrtcVersion', this.f.nvrtcVersion(major, minor));
    this.version = `${major[0]}.${minor[0]}`;
    this.cacheDir = process.env.MOPT_KERNEL_CACHE ?? join(homedir(), '.cache', 'mopt', 'kernels');
  }

  private check(call: string, code: number): void {
    if (code !== 0) throw new NvrtcError(`${call} failed: ${String((this.f.nvrtcGetErrorString as unknown as (c: number) => string)(code))}`);
  }

  /** CUBIN for `source` compiled for sm_<arch> (e.g. "90"); cached on disk. */
  compile(name: string, source: string, arch: string, extraOptions: readonly string[] = []): Uint8Array {
    const options = [`--gpu-architecture=sm_${arch}`, '--std=c++17', '-default-device', ...cudaIncludeDirs().map((d) => `-I${d}`), ...extraOptions];
    const key = createHash('sha256').update(source).update('\0').update(options.join('\0')).update('\0').update(this.version).digest('hex').slice(0, 32);
    const cached = join(this.cacheDir, `${name}-${key}.cubin`);
    if (existsSync(cached)) return new Uint8Array(readFileSync(cached));
    const prog: unknown[] = [null];
    this.check('nvrtcCreateProgram', this.f.nvrtcCreateProgram(prog, source, `${name}.cu`, 0, null, null));
    try {
      const code = this.f.nvrtcCompileProgram(prog[0], options.length, options);
      if (code !== 0) {
        const size = [0];
        this.f.nvrtcGetProgramLogSize(prog[0], size);
        const log = new Uint8Array(Number(size[0]));
        this.f.nvrtcGetProgramLog(prog[0], log);
        const text = new TextDecoder().decode(log.subarray(0, Math.max(0, log.length - 1)));
        throw new NvrtcError(`NVRTC could not compile ${name}.cu for sm_${arch}:\n${text}`);
      }
      const size = [0];
      this.check('nvrtcGetCUBINSize', this.f.nvrtcGetCUBINSize(prog[0], size));
      const cubin = new Uint8Array(Number(size[0]));
      this.check('nvrtcGetCUBIN', this.f.nvrtcGetCUBIN(prog[0], cubin));
      try {
        mkdirSync(this.cacheDir, { recursive: true });
        const tmp = `${cached}.tmp-${process.pid}`;
        writeFileSync(tmp, cubin);
        renameSync(tmp, cached);
      } catch {
        // a read-only cache only costs a recompile next time
      }
      return cubin;
    } finally {
      this.f.nvrtcDestroyProgram(prog);
    }
  }
}

