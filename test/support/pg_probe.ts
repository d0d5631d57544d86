// Talking to a test PostgreSQL from outside the server: Debian's `psql` (what an operator or a
// shell script would use) and the npm client (what an application in JS would use).
import { spawn } from "node:child_process";
import postgres, { type Sql } from "postgres";

/** Runs `sql` through psql (ON_ERROR_STOP, unaligned, tuples only); resolves with its stdout. */
export function psql(url: string, sql: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn("psql", ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    p.stdout.on("data", (d) => {
      out += d;
    });
    p.stderr.on("data", (d) => {
      err += d;
    });
    p.on("error", reject);
    p.on("exit", (code) =>
      code === 0 ? resolve(out.trim()) : reject(new Error(`psql exited ${code}: ${err.trim()}`)),
    );
  });
}

/** A client of the npm `postgres` package, quiet about NOTICEs. Close it with .end(). */
export function pgClient(url: string, max = 2): Sql {
  return postgres(url, { max, onnotice: () => {}, idle_timeout: 0 });
}

/** A fresh database on the cluster (tests that must not see each other's tables). */
export async function createDatabase(url: string, name: string): Promise<string> {
  await psql(url, `CREATE DATABASE "${name}"`);
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}
