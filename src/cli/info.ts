// `edge-moq info`: what this runtime offers and what 'auto' picks.

import { createBackend } from '../backends/select.js';

export async function infoCommand(): Promise<number> {
  const backend = await createBackend({ kind: 'auto' });
  console.log(`edge-moq on ${typeof process === 'object' ? `Node ${process.versions.node}` : 'this runtime'}`);
  console.log(backend.explain());
  backend.dispose();
  return 0;
}
