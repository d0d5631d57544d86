/** POSTs a broadcast body the way an application does. */
export async function publish(url: string, body: unknown, key?: string): Promise<Response> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (key) headers.authorization = `Bearer ${key}`;
  return fetch(url, {
    method: "POST",
    headers,
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** Reads one metric from the Prometheus endpoint. */
export async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(url)).text();
  const m = text.match(new RegExp(`^anycable_go_${name}(?:\\{[^}]*\\})? (\\d+)$`, "m"));
  if (!m) throw new Error(`metric ${name} not found in:\n${text}`);
  return Number(m[1]);
}

/** Resident set size of a process in bytes (Linux). */
export async function rssOf(pid: number): Promise<number> {
  const { readFileSync } = await import("node:fs");
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const m = status.match(/^VmRSS:\s+(\d+) kB$/m);
  return m ? Number(m[1]) * 1024 : 0;
}
