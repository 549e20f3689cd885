// The code bit stream of a packed tensor (element i at stream bits [i*b, (i+1)*b), low bits
// first) written and read in pieces that need not start on a byte: a group larger than a
// chunk is packed a chunk at a time, and groups of g*b bits not divisible by 8 start mid-byte.
// Pieces that do start on a byte pass straight through; others are shifted here.

/** Appends bit runs to a byte sink; finish() writes the last partial byte (zero-padded). */
export class CodeStreamWriter {
  private pending = 0;
  private pendingBits = 0;
  private shifted = new Uint8Array(0);
  bitsWritten = 0;

  constructor(private readonly write: (bytes: Uint8Array) => Promise<void>) {}

  /** Appends the first `bits` bits of `codes` (bits beyond them are ignored). */
  async append(codes: Uint8Array, bits: number): Promise<void> {
    const total = this.pendingBits + bits;
    const whole = total >>> 3;
    const rest = total & 7;
    const shift = this.pendingBits;
    let tail: number;
    if (shift === 0) {
      if (whole > 0) await this.write(codes.subarray(0, whole));
      tail = rest ? codes[whole]! : 0;
    } else {
      if (this.shifted.length < whole + 1) this.shifted = new Uint8Array(whole + 1);
      const out = this.shifted;
      // Byte j of the continued stream: the pending low bits, then codes shifted up by `shift`
      // (whole <= codes.length, as bits <= 8 * codes.length and shift < 8).
      let carry = this.pending;
      for (let j = 0; j <= whole; j++) {
        const byte = j < codes.length ? codes[j]! : 0;
        out[j] = (carry | (byte << shift)) & 0xff;
        carry = byte >>> (8 - shift);
      }
      if (whole > 0) await this.write(out.subarray(0, whole));
      tail = out[whole]!;
    }
    this.pending = rest ? tail & ((1 << rest) - 1) : 0;
    this.pendingBits = rest;
    this.bitsWritten += bits;
  }

  async finish(): Promise<void> {
    if (this.pendingBits > 0) await this.write(Uint8Array.of(this.pending));
    this.pending = 0;
    this.pendingBits = 0;
  }
}

/**
 * Reads `bitCount` stream bits starting at stream bit `firstBit` of the codes that start at
 * byte `codesOffset` of `source`, into `into` from its bit 0 (the bytes of `into` past the
 * bits asked for hold whatever follows in the stream).
 */
export async function readCodeBits(
  source: { read(offset: number, into: Uint8Array): Promise<void> },
  codesOffset: number,
  firstBit: number,
  bitCount: number,
  into: Uint8Array,
  scratch: Uint8Array,
): Promise<Uint8Array> {
  // Exact for any safe integer: 2^32 is a multiple of 8, so ToInt32 keeps the low bits.
  const shift = firstBit & 7;
  const bytes = Math.ceil((shift + bitCount) / 8);
  const out = into.subarray(0, Math.ceil(bitCount / 8));
  if (shift === 0) {
    await source.read(codesOffset + Math.floor(firstBit / 8), out);
    return out;
  }
  const raw = scratch.subarray(0, bytes);
  await source.read(codesOffset + Math.floor(firstBit / 8), raw);
  for (let j = 0; j < out.length; j++) {
    out[j] = ((raw[j]! >>> shift) | ((j + 1 < bytes ? raw[j + 1]! : 0) << (8 - shift))) & 0xff;
  }
  return out;
}
