// GPUBufferUsage and GPUMapMode values, spelled out once: in Node the GPU* globals exist only if
// the caller installed them, so the code that creates and maps buffers cannot read them there.

export const USAGE_MAP_READ = 1;
export const USAGE_COPY_SRC = 4;
export const USAGE_COPY_DST = 8;
export const USAGE_UNIFORM = 64;
export const USAGE_STORAGE = 128;
export const MAP_MODE_READ = 1;
