import { it } from "node:test";

type TestFn = () => Promise<void> | void;

/** `it` when the backend has the capability the test needs; otherwise the test is not registered. */
export function itWhen(on: boolean): (name: string, fn: TestFn) => void {
  return on ? (name, fn) => it(name, fn) : () => {};
}
