export interface Counts {
  passed: number;
  failed: number;
  skipped: number;
}

export const RUNTIMES: string[];
export function bunCounts(out: string): Counts;
export function denoCounts(out: string): Counts;
export function parseRuntimes(raw: string): string[];
export function declaredRuntimes(
  source: string,
): { runtimes: string[]; error?: undefined } | { error: string };
export function bunResultsByFile(report: string): Map<string, Set<string>>;
export function runtimeCoverage(
  files: Array<{ name: string; source: string }>,
  reports: string[],
  enabled: string[],
): { missing: string[]; omitted: string[] };
