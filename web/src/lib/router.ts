// Client-side routes under /app/ (the server answers index.html for all of them).
import { signal } from "@preact/signals";

export const BASE = "/app";
export const path = signal(currentPath());

function currentPath(): string {
  const full = location.pathname;
  const rest = full.startsWith(BASE) ? full.slice(BASE.length) : full;
  return rest.replace(/\/+$/, "") || "/";
}

export function navigate(to: string, replace = false): void {
  const url = BASE + (to === "/" ? "/" : to);
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  path.value = currentPath();
}

addEventListener("popstate", () => {
  path.value = currentPath();
});

export function match(pattern: string, value: string): Record<string, string> | null {
  const p = pattern.split("/");
  const v = value.split("/");
  if (p.length !== v.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < p.length; i++) {
    if (p[i].startsWith(":")) params[p[i].slice(1)] = decodeURIComponent(v[i]);
    else if (p[i] !== v[i]) return null;
  }
  return params;
}
