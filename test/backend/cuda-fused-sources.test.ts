// Checks the fused attention kernels' by-value layout struct against the TypeScript that fills it, without
// a GPU: attention.cuh AttnLayout must list exactly fused-attention.ts ATTN_FIELDS, in order, all int64
// (so field i sits at byte 8 * i). (Kernel names are checked by cuda-sources.test.ts through
// allKernelRefs.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kernelSource } from '../../src/backend/cuda/kernels.js';
import { ATTN_FIELDS } from '../../src/backend/cuda/fused-attention.js';
import { ROPE_APPEND_FIELDS } from '../../src/backend/cuda/fused.js';
import { GEMV_FIELDS, GEMV_MAX_SEGMENTS, GEMV_SEG_FIELDS } from '../../src/backend/cuda/gemv.js';
import { LAYER_FIELDS, STEP_FIELDS } from '../../src/backend/cuda/decode-step.js';

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

test('gemv.cu GemvLayout / GemvSeg have the fields gemv.ts writes, in order, all int64', () => {
  const src = kernelSource('gemv');
  const seg = structFields(src, 'GemvSeg');
  assert.deepEqual(seg.map((f) => f.field), [...GEMV_SEG_FIELDS]);
  assert.ok(seg.every((f) => f.type === 'i64_t'));
  const layout = structFields(src, 'GemvLayout');
  assert.deepEqual(layout.map((f) => f.field), [...GEMV_FIELDS, 'seg[MOPT_GEMV_SEGS]']);
  assert.deepEqual(layout.map((f) => f.type), [...GEMV_FIELDS.map(() => 'i64_t'), 'GemvSeg']);
  assert.match(src, new RegExp(`#define MOPT_GEMV_SEGS ${GEMV_MAX_SEGMENTS}\\n`));
});

test('pointwise.cu RopeAppendLayout has the fields fused.ts writes, in order, all int64', () => {
  const fields = structFields(kernelSource('pointwise'), 'RopeAppendLayout');
  assert.deepEqual(fields.map((f) => f.field), [...ROPE_APPEND_FIELDS]);
  assert.ok(fields.every((f) => f.type === 'i64_t'));
});

test('decode_step.cu DsLayer / DsArgs have the fields decode-step.ts writes, in order, all int64', () => {
  const src = kernelSource('decode_step');
  for (const [name, want] of [['DsLayer', LAYER_FIELDS], ['DsArgs', STEP_FIELDS]] as const) {
    const fields = structFields(src, name);
    assert.deepEqual(fields.map((f) => f.field), [...want], name);
    assert.ok(fields.every((f) => f.type === 'i64_t'), name);
  }
});
