// The one formatter of values for messages: whatever a caller or a file hands us (BigInt,
// cycles, getters, Proxies, 10,000-deep arrays), it returns a short string and never throws.

export function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object';
  return typeof value;
}

/**
 * A value as an error message shows it: numbers as JavaScript prints them (NaN, 1e+21), the rest
 * as JSON, shortened. Never throws (BigInt, cycles, null-prototype objects) and never prints
 * "[object Object]".
 */
export function describeValue(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'symbol') return String(value);
  if (typeof value === 'function' || value === undefined) return typeName(value);
  try {
    const json = JSON.stringify(value);
    if (json !== undefined) return json.length > 80 ? `${json.slice(0, 77)}...` : json;
  } catch {
    // A BigInt inside, or a cycle: fall back to the type.
  }
  return typeName(value);
}

