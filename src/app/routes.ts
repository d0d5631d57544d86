// The HTTP side of a cable: one Hono app per port (anycable-go runs one HTTP server per port),
// listeners of their own for routes on separate hosts, and the start-up lines naming addresses.
import { Hono } from "hono";
import type * as listenerConfig from "../http/options.ts";

export interface ExtraListener {
  host: string;
  port: number;
  /** Uses the main listener's TLS (metrics on a separate host never do, as in anycable-go). */
  tls: boolean;
  fetch(req: Request): Response | Promise<Response>;
}

export class Routes {
  private readonly apps = new Map<number, Hono>();
  private readonly separate: ExtraListener[] = [];
  private readonly lines: Array<() => string[]> = [];
  /** The main port as bound (it may be configured as 0); start-up lines are built after binding. */
  mainPort: number;

  constructor(private readonly listener: listenerConfig.Options) {
    this.mainPort = listener.port;
  }

  /** The app answering requests on `port`. */
  on(port: number): Hono {
    let app = this.apps.get(port);
    if (!app) {
      app = new Hono();
      this.apps.set(port, app);
    }
    return app;
  }

  get main(): Hono {
    return this.on(this.listener.port);
  }

  /** Routes on a host of their own get a listener of their own. */
  separateHost(listener: ExtraListener): void {
    this.separate.push(listener);
  }

  address(port: number, host = this.listener.host): string {
    const scheme = this.listener.tls ? "https" : "http";
    return `${scheme}://${host}:${port === this.listener.port ? this.mainPort : port}`;
  }

  /** A start-up line, built once the listeners are bound. */
  announce(lines: () => string[]): void {
    this.lines.push(lines);
  }

  startupLines(): string[] {
    return this.lines.flatMap((f) => f());
  }

  /** Listeners besides the main one: other ports of the main host, then separate hosts. */
  extraListeners(): ExtraListener[] {
    const out: ExtraListener[] = [];
    for (const [port, app] of this.apps) {
      if (port !== this.listener.port)
        out.push({ host: this.listener.host, port, tls: true, fetch: (r) => app.fetch(r) });
    }
    return [...out, ...this.separate];
  }
}
