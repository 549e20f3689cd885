// A Worker that quantizes weights: POST little-endian float32 bytes to
//   /?bits=4&groups=8&type=symmetric&rounding=nearest
// and get the fake-quantized float32 bytes back; the `x-edge-moq-backend` header says what ran.

import { createBackend, EdgeMoqError, type Backend, type FakeQuantizeOptions, type QuantizationType, type Rounding } from 'edge-moq';

// One backend per isolate: the WebAssembly is instantiated once and reused by every request.
let backend: Promise<Backend> | undefined;

function getBackend(): Promise<Backend> {
  backend ??= createBackend().catch((error: unknown) => {
    backend = undefined;
    throw error;
  });
  return backend;
}

/** The query string as fakeQuantize options; edge-moq rejects bad values with a clear message. */
function optionsFrom(params: URLSearchParams): FakeQuantizeOptions {
  const options: FakeQuantizeOptions = { bits: Number(params.get('bits') ?? 8) };
  for (const key of ['groups', 'groupSize', 'seed', 'step', 'tensorId'] as const) {
    const value = params.get(key);
    if (value !== null) options[key] = Number(value);
  }
  const type = params.get('type');
  if (type !== null) options.type = type as QuantizationType;
  const rounding = params.get('rounding');
  if (rounding !== null) options.rounding = rounding as Rounding;
  return options;
}

export default {
  async fetch(request: Request): Promise<Response> {
    if (request.method !== 'POST') {
      return new Response('POST little-endian float32 weights to /?bits=4&groups=8\n', { status: 405, headers: { allow: 'POST' } });
    }
    const body = await request.arrayBuffer();
    if (body.byteLength === 0 || body.byteLength % 4 !== 0) {
      return Response.json({ error: 'INVALID_ARGUMENT', message: `the body must be float32 values (a multiple of 4 bytes), got ${body.byteLength} bytes.` }, { status: 400 });
    }
    const weights = new Float32Array(body);
    const quantizer = await getBackend();
    try {
      await quantizer.fakeQuantize(weights, optionsFrom(new URL(request.url).searchParams));
    } catch (error) {
      if (error instanceof EdgeMoqError) return Response.json({ error: error.code, message: error.message }, { status: 400 });
      throw error;
    }
    return new Response(weights, {
      headers: { 'content-type': 'application/octet-stream', 'x-edge-moq-backend': quantizer.kind },
    });
  },
};
