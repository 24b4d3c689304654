import { test } from 'node:test';
import assert from 'node:assert/strict';
import { x } from '../../src/tensor/probe.js';
test('probe', () => assert.equal(x, 1));
