// Quantizes a bell-shaped tensor and draws its histogram before and after, saying which
// backend ran and why.
import { createBackend } from 'edge-moq';

const params = new URLSearchParams(location.search);
const kind = params.get('backend') ?? 'auto';
const bits = Number(params.get('bits') ?? 4);
const BINS = 96;

/** Seeded normal values (Box-Muller over a xorshift generator): the same picture every time. */
function bellShaped(length, seed) {
  let s = seed;
  const uniform = () => {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
    return ((s >>> 0) + 0.5) / 4294967296;
  };
  return Float32Array.from({ length }, () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform()));
}

function histogram(values, lo, hi) {
  const counts = new Uint32Array(BINS);
  for (const v of values) counts[Math.min(BINS - 1, Math.floor(((v - lo) / (hi - lo)) * BINS))]++;
  return counts;
}

function draw(canvas, counts) {
  const context = canvas.getContext('2d');
  const peak = Math.max(...counts);
  const width = canvas.width / counts.length;
  context.clearRect(0, 0, canvas.width, canvas.height);
  context.fillStyle = '#3b6fb6';
  counts.forEach((count, i) => {
    const height = (count / peak) * (canvas.height - 4);
    context.fillRect(i * width, canvas.height - height, Math.max(1, width - 1), height);
  });
}

const status = document.querySelector('#status');
try {
  const backend = await createBackend({ kind });
  document.querySelector('#explain').textContent = backend.explain();
  const before = bellShaped(1 << 14, 20240601);
  const after = await backend.fakeQuantize(before.slice(), { bits, groups: 1 });
  const lo = Math.min(...before);
  const hi = Math.max(...before);
  draw(document.querySelector('#before'), histogram(before, lo, hi));
  draw(document.querySelector('#after'), histogram(after, lo, hi));
  const levels = new Set(after).size;
  document.querySelector('#after-caption').textContent = `after: ${bits} bits, ${levels} distinct values`;
  status.textContent = `${backend.kind} quantized ${before.length} values to ${bits} bits (${new Set(before).size} distinct values became ${levels}).`;
  document.body.dataset.backend = backend.kind;
  document.body.dataset.levels = String(levels);
  backend.dispose();
} catch (error) {
  status.textContent = `${error.name}: ${error.message}`;
  document.body.dataset.error = error.message;
}
