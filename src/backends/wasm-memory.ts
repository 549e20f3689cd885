// The host side of WebAssembly memory: a first-fit allocator over the module's linear memory.
// The kernels never allocate; this owns growth. Views into memory.buffer are detached when the
// memory grows, so callers hold WasmTensor handles whose `array` is re-created on demand.

import { BackendError } from '../errors.js';

const PAGE = 65536;
const ALIGN = 16;
const MAX_PAGES = 65536; // 4 GiB: the wasm32 limit

interface Block { offset: number; size: number }

export class WasmHeap {
  private free: Block[] = [];
  private top: number;

  constructor(readonly memory: WebAssembly.Memory, base: number) {
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
        else { block.offset += size; block.size -= size; }
        return offset;
      }
    }
    const offset = this.top;
    const end = offset + size;
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      const pages = Math.ceil((end - have) / PAGE);
      if (have / PAGE + pages > MAX_PAGES) {
        throw new BackendError('INVALID_ARGUMENT',
          `cannot allocate ${bytes} bytes: WebAssembly memory is limited to 4 GiB; quantize the tensor in smaller parts.`);
      }
      try {
        this.memory.grow(pages);
      } catch (cause) {
        throw new BackendError('INVALID_ARGUMENT',
          `cannot grow WebAssembly memory by ${pages * PAGE} bytes (the runtime refused); quantize smaller tensors.`, { cause });
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
}

function alignUp(n: number): number {
  return Math.ceil(n / ALIGN) * ALIGN;
}

/** A float32 tensor living in WebAssembly memory: quantized there with no copies. */
export class WasmTensor {
  private view: Float32Array;
  private released = false;

  constructor(private readonly heap: WasmHeap, readonly byteOffset: number, readonly length: number) {
    this.view = new Float32Array(heap.memory.buffer, byteOffset, length);
  }

  /** The current view (re-created if the memory grew since the last access). */
  get array(): Float32Array {
    if (this.released) throw new BackendError('INVALID_ARGUMENT', 'this WasmTensor was freed; allocate a new one.');
    if (this.view.buffer !== this.heap.memory.buffer) {
      this.view = new Float32Array(this.heap.memory.buffer, this.byteOffset, this.length);
    }
    return this.view;
  }

  free(): void {
    if (this.released) return;
    this.released = true;
    this.heap.release(this.byteOffset, this.length * 4);
  }
}
