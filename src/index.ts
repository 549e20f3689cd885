export { createBackend, type CreateBackendOptions } from './backends/select.js';
export type { Backend, BackendKind, BackendRequest, FakeQuantizeTarget, GroupStats, QuantizeJob, SelectionReport } from './backends/backend.js';
export { WasmBackend, type WasmBackendOptions } from './backends/wasm/backend.js';
export { WebGpuBackend, summarizeAdapter, describeAdapter } from './backends/webgpu/backend.js';
export type { WebGpuBackendOptions, GpuBufferJob, DowngradeEvent, WebGpuCounters, AdapterSummary } from './backends/webgpu/backend.js';
export { WEBGPU_CROSSOVER_ELEMENTS } from './backends/select.js';
export { AutoBackend } from './backends/auto.js';
export { WasmTensor } from './backends/wasm/memory.js';
export { runtimeHasSimd, type WasmBuild, type WasmSource } from './backends/wasm/loader.js';
export { Quantizer } from './quantizer.js';
export type {
  BlockEigenvalues,
  Parameter,
  ParameterState,
  PrecisionSwitch,
  QuantizerRuntime,
  QuantizerState,
  StepOptions,
  StepReport,
  SwitchListener,
} from './quantizer.js';
export { optionsFromDeepSpeed } from './config.js';
export { planFakeQuantize } from './kernel-plan.js';
export { compileNamePattern, type NamePattern } from './name-pattern.js';
export type { EigenvalueOptions, ParameterSchedule, QuantizerOptions, ResolvedQuantizerOptions, ScheduleGroup } from './config.js';
export type { FakeQuantizeOptions, Grid, KernelPlan, QuantizationType, Rounding } from './kernel-plan.js';
export { BackendError, ConfigError, EdgeMoqError, FormatError, InvalidInputError, type ErrorCode, type ErrorLocation } from './errors.js';
