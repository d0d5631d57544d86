// `--rpc_enable_tls`, `--rpc_tls_root_ca`, `--rpc_tls_verify` as anycable-go reads them: TLS is on
// when enabled or when a root CA is given; the CA is a file path or, if no such file exists,
// inline PEM; verification can be switched off for development.
import { existsSync, readFileSync, statSync } from "node:fs";

export interface RpcTlsSettings {
  enabled: boolean;
  rootCa: string;
  verify: boolean;
}

export function tlsEnabled(tls: RpcTlsSettings): boolean {
  return tls.enabled || tls.rootCa !== "";
}

/** The root CA PEM, or undefined for the system CAs. */
export function loadRootCa(rootCa: string): string | undefined {
  if (rootCa === "") return undefined;
  let pem = rootCa;
  if (existsSync(rootCa) && !statSync(rootCa).isDirectory()) {
    try {
      pem = readFileSync(rootCa, "utf8");
    } catch (err) {
      throw new Error(`failed to read RPC root CA certificate: ${(err as Error).message}`);
    }
  }
  if (!pem.includes("-----BEGIN CERTIFICATE-----"))
    throw new Error("failed to parse RPC root CA certificate");
  return pem;
}

/** node:tls options for the RPC connection (undefined when TLS is off). */
export function nodeTlsOptions(
  tls: RpcTlsSettings,
): { ca?: string; rejectUnauthorized: boolean } | undefined {
  if (!tlsEnabled(tls)) return undefined;
  const ca = loadRootCa(tls.rootCa);
  return ca ? { ca, rejectUnauthorized: tls.verify } : { rejectUnauthorized: tls.verify };
}

/** Whether a transport error came from the TLS handshake (anycable-go: Unauthenticated, no retry). */
export function isTlsError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    const { message = "", code = "" } = e as { message?: string; code?: string };
    if (/CERT|SSL|TLS|certificate|self[- ]signed/i.test(`${code} ${message}`)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}
