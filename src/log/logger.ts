// One logger for the whole server, formatted like anycable-go's (tint text handler / slog JSON):
//   2024-10-07 17:52:37.139 INF Starting AnyCable ... nodeid=abc
export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFormat = "text" | "json";
export type LogAttrs = Record<string, unknown>;

const LEVEL_ORDER: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };
const TEXT_TAGS: Record<LogLevel, string> = { debug: "DBG", info: "INF", warn: "WRN", error: "ERR" };
const JSON_TAGS: Record<LogLevel, string> = { debug: "DEBUG", info: "INFO", warn: "WARN", error: "ERROR" };

export interface LogSink {
  write(line: string): void;
}

const stdoutSink: LogSink = {
  write(line) {
    // console.log is synchronous enough on both runtimes and keeps the core free of runtime APIs.
    console.log(line);
  },
};

export class Logger {
  private readonly threshold: number;

  constructor(
    readonly level: LogLevel = "info",
    readonly format: LogFormat = "text",
    private readonly attrs: LogAttrs = {},
    private readonly sink: LogSink = stdoutSink,
  ) {
    this.threshold = LEVEL_ORDER[level];
  }

  with(attrs: LogAttrs): Logger {
    return new Logger(this.level, this.format, { ...this.attrs, ...attrs }, this.sink);
  }

  enabled(level: LogLevel): boolean {
    return LEVEL_ORDER[level] >= this.threshold;
  }

  debug(msg: string, attrs?: LogAttrs): void {
    if (this.threshold <= 0) this.emit("debug", msg, attrs);
  }
  info(msg: string, attrs?: LogAttrs): void {
    if (this.threshold <= 1) this.emit("info", msg, attrs);
  }
  warn(msg: string, attrs?: LogAttrs): void {
    if (this.threshold <= 2) this.emit("warn", msg, attrs);
  }
  error(msg: string, attrs?: LogAttrs): void {
    this.emit("error", msg, attrs);
  }

  private emit(level: LogLevel, msg: string, attrs?: LogAttrs): void {
    const all = attrs ? { ...attrs, ...this.attrs } : this.attrs;
    const now = new Date();
    if (this.format === "json") {
      this.sink.write(
        JSON.stringify({ time: now.toISOString(), level: JSON_TAGS[level], msg, ...all }, (_k, v) =>
          v instanceof Error ? v.message : v,
        ),
      );
      return;
    }
    let line = `${formatTime(now)} ${TEXT_TAGS[level]} ${msg}`;
    for (const key in all) line += ` ${key}=${formatValue(all[key])}`;
    this.sink.write(line);
  }
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, "0");
}

function formatTime(d: Date): string {
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`
  );
}

function formatValue(value: unknown): string {
  if (value instanceof Error) return quoteIfNeeded(value.message);
  if (typeof value === "string") return quoteIfNeeded(value);
  if (value === undefined) return '""';
  if (typeof value === "object" && value !== null) return quoteIfNeeded(JSON.stringify(value));
  return String(value);
}

function quoteIfNeeded(s: string): string {
  return s === "" || /[\s"=]/.test(s) ? JSON.stringify(s) : s;
}

/** Truncates client-supplied data before logging so a huge frame cannot flood the log. */
export function compact(data: string | Uint8Array, max = 100): string {
  if (typeof data !== "string") return `<${data.byteLength} bytes binary>`;
  return data.length > max ? `${data.slice(0, max)}...(${data.length - max} more)` : data;
}
