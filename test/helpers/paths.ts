// Locations of the shared reference data (../shared/data beside the checkout) and committed fixtures.

import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
/** repository root (tests run from dist/test/...) */
export const REPO_ROOT = resolve(here, '..', '..', '..');
export const SHARED_DATA = process.env.MOPT_SHARED_DATA ?? resolve(REPO_ROOT, '..', 'shared', 'data');
export const STORIES_HF = join(SHARED_DATA, 'models', 'stories260K-hf');
export const FIXTURES = join(REPO_ROOT, 'test', 'fixtures');
