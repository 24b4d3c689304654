// Locations of the shared reference data (../shared/data beside the checkout, or shared/data inside it;
// MOPT_SHARED_DATA overrides) and of the committed fixtures.

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
/** repository root (tests run from dist/test/...) */
export const REPO_ROOT = resolve(here, '..', '..', '..');
export const SHARED_DATA =
  process.env.MOPT_SHARED_DATA ??
  [join(REPO_ROOT, 'shared', 'data'), join(REPO_ROOT, '..', 'shared', 'data')].find((p) => existsSync(p)) ??
  join(REPO_ROOT, '..', 'shared', 'data');
/** node:test skip reason when the reference data is absent: say so loudly rather than pass vacuously */
export const DATA_SKIP: string | false = existsSync(SHARED_DATA) ? false : 'shared/data not found (set MOPT_SHARED_DATA)';
export const STORIES_HF = join(SHARED_DATA, 'models', 'stories260K-hf');
export const FIXTURES = join(REPO_ROOT, 'test', 'fixtures');
