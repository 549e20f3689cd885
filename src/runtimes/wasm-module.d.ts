// What a `.wasm` import gives in Workers (wrangler's default CompiledWasm rule, miniflare's
// modulesRules): the compiled module, ready to instantiate.
declare module '*.wasm' {
  const module: WebAssembly.Module;
  export default module;
}
