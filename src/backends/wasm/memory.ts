// The host side of WebAssembly memory: a first-fit allocator over the module's linear memory.
// The kernels never allocate; this owns growth. Views into memory.buffer are detached when the
// memory grows, so callers hold WasmTensor handles whose `array` is re-created on demand.
// It also knows which tensors are live: a view kept after free() would otherwise quantize
// whatever tensor reuses that memory.

import { InvalidInputError } from '../../errors.js';

const PAGE = 65536;
const ALIGN = 16;
const MAX_PAGES = 65536; // 4 GiB: the wasm32 limit

interface Block {
  offset: number;
  size: number;
}

export class WasmHeap {
  private free: Block[] = [];
  private top: number;
  // Live tensors' byte ranges, sorted by start (tensors never overlap), and the views handed out.
  private liveStarts: number[] = [];
  private liveEnds: number[] = [];
  private readonly viewOwners = new WeakMap<Float32Array, WasmTensor>();

  constructor(
    readonly memory: WebAssembly.Memory,
    base: number,
  ) {
    this.top = alignUp(base);
  }

  /** Reserves `bytes` and returns the byte offset. Grows the memory when needed. */
  allocate(bytes: number): number {
    const size = alignUp(Math.max(bytes, ALIGN));
    for (let i = 0; i < this.free.length; i++) {
      const block = this.free[i]!;
      if (block.size >= size) {
        const offset = block.offset;
        if (block.size === size) this.free.splice(i, 1);
        else {
          block.offset += size;
          block.size -= size;
        }
        return offset;
      }
    }
    const offset = this.top;
    const end = offset + size;
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      const pages = Math.ceil((end - have) / PAGE);
      if (have / PAGE + pages > MAX_PAGES) {
        throw new InvalidInputError('INVALID_ARGUMENT', `cannot allocate ${bytes} bytes: WebAssembly memory is limited to 4 GiB; quantize the tensor in smaller parts.`);
      }
      try {
        this.memory.grow(pages);
      } catch (cause) {
        throw new InvalidInputError('INVALID_ARGUMENT', `cannot grow WebAssembly memory by ${pages * PAGE} bytes (the runtime refused); quantize smaller tensors.`, { cause });
      }
    }
    this.top = end;
    return offset;
  }

  release(offset: number, bytes: number): void {
    const size = alignUp(Math.max(bytes, ALIGN));
    let i = 0;
    while (i < this.free.length && this.free[i]!.offset < offset) i++;
    this.free.splice(i, 0, { offset, size });
    // Merge with the neighbours so freed space is reusable for larger tensors.
    const next = this.free[i + 1];
    if (next && offset + size === next.offset) {
      this.free[i]!.size += next.size;
      this.free.splice(i + 1, 1);
    }
    const previous = this.free[i - 1];
    if (previous && previous.offset + previous.size === offset) {
      previous.size += this.free[i]!.size;
      this.free.splice(i, 1);
    }
    const last = this.free[this.free.length - 1];
    if (last && last.offset + last.size === this.top) {
      this.top = last.offset;
      this.free.pop();
    }
  }

  /**
   * Refuses a view of this memory that is not inside a live tensor: one of a freed tensor (even
   * if another tensor now lives there, when the view is the one `tensor.array` gave), or one
   * made over memory no tensor owns. Allocates nothing: it runs on every call's hot path.
   */
  assertLiveView(view: Float32Array, label: string): void {
    const owner = this.viewOwners.get(view);
    if (owner !== undefined) {
      if (owner.freed) throw freedView(label);
      return;
    }
    const start = view.byteOffset;
    const end = start + view.byteLength;
    const i = this.lastStartAtOrBefore(start);
    if (i < 0 || end > this.liveEnds[i]!) {
      throw new InvalidInputError(
        'INVALID_ARGUMENT',
        `${label} views WebAssembly memory that no live WasmTensor holds (bytes ${start}..${end}): its tensor was freed, ` +
          'or the view was made by hand; quantize tensor.array (or a subarray of it) of a tensor from allocate() or upload().',
      );
    }
  }

  /** @internal WasmTensor's bookkeeping. */
  track(tensor: WasmTensor, view: Float32Array): void {
    this.viewOwners.set(view, tensor);
  }

  /** @internal */
  open(start: number, bytes: number): void {
    const i = this.lastStartAtOrBefore(start) + 1;
    this.liveStarts.splice(i, 0, start);
    this.liveEnds.splice(i, 0, start + bytes);
  }

  /** @internal */
  close(start: number): void {
    const i = this.lastStartAtOrBefore(start);
    this.liveStarts.splice(i, 1);
    this.liveEnds.splice(i, 1);
  }

  private lastStartAtOrBefore(offset: number): number {
    let lo = 0;
    let hi = this.liveStarts.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.liveStarts[mid]! <= offset) lo = mid + 1;
      else hi = mid - 1;
    }
    return hi;
  }
}

function freedView(label: string): InvalidInputError {
  return new InvalidInputError('INVALID_ARGUMENT', `${label} is the view of a WasmTensor that was freed: its memory may now hold another tensor; allocate a new tensor.`);
}

function alignUp(n: number): number {
  return Math.ceil(n / ALIGN) * ALIGN;
}

/** A float32 tensor living in WebAssembly memory: quantized there with no copies. */
export class WasmTensor {
  private view: Float32Array;
  private released = false;

  /**
   * Made by WasmBackend.upload/allocate, which reserve the range first.
   * @internal
   */
  constructor(
    private readonly heap: WasmHeap,
    readonly byteOffset: number,
    readonly length: number,
  ) {
    this.view = new Float32Array(heap.memory.buffer, byteOffset, length);
    heap.open(byteOffset, length * 4);
    heap.track(this, this.view);
  }

  /** Whether free() was called: its views are refused from then on. */
  get freed(): boolean {
    return this.released;
  }

  /** The current view (re-created if the memory grew since the last access). */
  get array(): Float32Array {
    if (this.released) throw new InvalidInputError('INVALID_ARGUMENT', 'this WasmTensor was freed; allocate a new one.');
    if (this.view.buffer !== this.heap.memory.buffer) {
      this.view = new Float32Array(this.heap.memory.buffer, this.byteOffset, this.length);
      this.heap.track(this, this.view);
    }
    return this.view;
  }

  /** Gives the memory back to the backend; its views are refused from then on. Freeing twice does nothing. */
  free(): void {
    if (this.released) return;
    this.released = true;
    this.heap.close(this.byteOffset);
    this.heap.release(this.byteOffset, this.length * 4);
  }
}
