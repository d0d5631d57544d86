// The status page's access check: the key as `?key=` or `Authorization: Bearer <key>`.
import { secureEquals } from "../broadcast/http.ts";

/** Whether `req` presents `key` ("" = open: every request passes). */
export function statusKeyMatches(req: Request, key: string): boolean {
  if (key === "") return true;
  const auth = req.headers.get("authorization") ?? "";
  if (auth !== "" && secureEquals(auth, `Bearer ${key}`)) return true;
  const given = new URL(req.url).searchParams.get("key");
  return given !== null && secureEquals(given, key);
}
