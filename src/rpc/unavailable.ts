import type { CommandResult, ConnectResult, Controller } from "../node/controller.ts";

/**
 * Stands in for the gRPC/HTTP RPC client until that transport lands: every call fails the way a
 * call to an unreachable backend does, so clients see exactly what anycable-go shows them when its
 * RPC server is down (1011 on connect, nothing on commands).
 */
export class UnavailableRpcController implements Controller {
  constructor(private readonly reason: string) {}
  private fail(): never {
    throw new Error(this.reason);
  }
  async authenticate(): Promise<ConnectResult> {
    this.fail();
  }
  async subscribe(): Promise<CommandResult> {
    this.fail();
  }
  async unsubscribe(): Promise<CommandResult> {
    this.fail();
  }
  async perform(): Promise<CommandResult> {
    this.fail();
  }
  async disconnect(): Promise<void> {
    this.fail();
  }
}
