// The progress bar and its line of text: the tensor being packed, bytes done of the total and the
// time left, estimated from the bytes per second so far (tensors differ in size, counts do not).

import type { Reply } from '../protocol.js';
import { formatBytes, formatDuration } from './format.js';

type ProgressReply = Extract<Reply, { type: 'progress' }>;

/** No estimate before this much time or this share of the bytes: early rates swing with start-up (backend, first tensor). */
const ESTIMATE_AFTER_MS = 500;
const ESTIMATE_AFTER_SHARE = 0.02;

export class ProgressView {
  private started = 0;

  constructor(
    private readonly bar: HTMLProgressElement,
    private readonly text: HTMLElement,
  ) {}

  start(): void {
    this.started = performance.now();
    this.bar.removeAttribute('value'); // indeterminate until the first report
    this.text.textContent = 'Starting…';
  }

  update(reply: ProgressReply): void {
    const share = reply.bytesTotal > 0 ? reply.bytesDone / reply.bytesTotal : reply.count > 0 ? reply.index / reply.count : 0;
    this.bar.value = Math.min(1, Math.max(0, share));
    const elapsed = performance.now() - this.started;
    const left = elapsed >= ESTIMATE_AFTER_MS && share >= ESTIMATE_AFTER_SHARE ? formatDuration((elapsed * (1 - share)) / share) : 'estimating';
    this.text.textContent = `${reply.tensor} (${Math.min(reply.index + 1, reply.count)} of ${reply.count}) · ${formatBytes(reply.bytesDone)} of ${formatBytes(reply.bytesTotal)} · ${left === 'estimating' ? 'estimating time left' : `${left} left`}`;
    this.text.dataset.tensor = reply.tensor;
  }

  finish(message: string): void {
    this.bar.value = 1;
    this.text.textContent = message;
  }

  reset(message = ''): void {
    this.bar.value = 0;
    this.text.textContent = message;
    delete this.text.dataset.tensor;
  }
}
