// The lifecycle every long-lived part of a cable shares, and the ordered list the root runs.
import type { Logger } from "../log/logger.ts";

export interface Service {
  /** Appears in logs when the service fails to start or stop. */
  readonly name: string;
  /**
   * Starts the service. `fatal` is for errors after start that the service cannot recover from
   * (e.g. Redis reconnect attempts exhausted): the root decides what happens (the CLI exits 1).
   */
  start(fatal: (err: Error) => void): Promise<void>;
  /** Stops the service; `deadline` aborts when graceful work (flushing, draining) must end. */
  shutdown(deadline: AbortSignal): Promise<void>;
}

/**
 * Services started in the order added and stopped in reverse, as anycable-go's runner does with
 * its shutdownables: what depends on another part is added after it and stopped before it.
 */
export class ServiceList {
  private readonly services: Service[] = [];
  private started: Service[] = [];

  constructor(private readonly log: Logger) {}

  add(service: Service): void {
    this.services.push(service);
  }

  get names(): string[] {
    return this.services.map((s) => s.name);
  }

  /** Starts each in order; if one fails, the ones already started are stopped and the error rethrown. */
  async start(fatal: (err: Error) => void): Promise<void> {
    for (const service of this.services) {
      try {
        await service.start(fatal);
      } catch (err) {
        await this.shutdown(AbortSignal.timeout(1000));
        throw new Error(`${service.name} failed to start: ${(err as Error).message}`);
      }
      this.started.push(service);
    }
  }

  /** Stops the started services in reverse order; one failing does not keep the others running. */
  async shutdown(deadline: AbortSignal): Promise<void> {
    const started = this.started;
    this.started = [];
    for (const service of started.reverse()) {
      try {
        await service.shutdown(deadline);
      } catch (err) {
        this.log.warn(`${service.name} failed to shut down`, { error: (err as Error).message });
      }
    }
  }
}
