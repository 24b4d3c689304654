// Checks the fused attention kernels' by-value layout struct against the TypeScript that fills it, without
// a GPU: attention.cuh AttnLayout must list exactly fused-attention.ts ATTN_FIELDS, in order, all int64
// (so field i sits at byte 8 * i). (Kernel names are checked by cuda-sources.test.ts through
// allKernelRefs.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kernelSource } from '../../src/backend/cuda/kernels.js';
import { ATTN_FIELDS } from '../../src/backend/cuda/fused-attention.js';

function structFields(src: string, name: string): { type: string; field: string }[] {
  const m = new RegExp(`struct\\s+${name}\\s*\\{([^}]*)\\}`).exec(src.replace(/\/\/[^\n]*/g, ''));
  assert.ok(m, `struct ${name} not found`);
  const out: { type: string; field: string }[] = [];
  for (const decl of m[1].split(';').map((d) => d.trim()).filter((d) => d !== '')) {
    const t = /^(\w+)\s+(.*)$/.exec(decl);
    assert.ok(t, `cannot parse "${decl}"`);
    for (const f of t[2].split(',')) out.push({ type: t[1], field: f.trim() });
  }
  return out;
}

test('attention.cuh AttnLayout has the fields fused-attention.ts writes, in order, all int64', () => {
  for (const file of ['attention', 'attention_tc', 'attention_bwd', 'attention_tc_bwd'] as const) {
    const fields = structFields(kernelSource(file), 'AttnLayout');
    assert.deepEqual(fields.map((f) => f.field), [...ATTN_FIELDS], `${file}.cu`);
    assert.ok(fields.every((f) => f.type === 'i64_t'), `${file}.cu: every AttnLayout field must be i64_t`);
  }
});
