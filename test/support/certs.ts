// A throwaway CA and a server certificate for 127.0.0.1/localhost, made with the system openssl
// into a temp directory, for TLS tests of the RPC clients.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestCerts {
  dir: string;
  caFile: string;
  ca: string;
  cert: string;
  key: string;
}

export function makeTestCerts(): TestCerts {
  const dir = mkdtempSync(join(tmpdir(), "anycable-ts-certs-"));
  const p = (name: string) => join(dir, name);
  const ssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "ignore" });
  ssl(
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=anycable-ts test CA",
    "-keyout",
    p("ca.key"),
    "-out",
    p("ca.pem"),
  );
  ssl(
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-subj",
    "/CN=localhost",
    "-keyout",
    p("server.key"),
    "-out",
    p("server.csr"),
  );
  writeFileSync(p("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  ssl(
    "x509",
    "-req",
    "-in",
    p("server.csr"),
    "-CA",
    p("ca.pem"),
    "-CAkey",
    p("ca.key"),
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    p("ext.cnf"),
    "-out",
    p("server.pem"),
  );
  return {
    dir,
    caFile: p("ca.pem"),
    ca: readFileSync(p("ca.pem"), "utf8"),
    cert: readFileSync(p("server.pem"), "utf8"),
    key: readFileSync(p("server.key"), "utf8"),
  };
}
