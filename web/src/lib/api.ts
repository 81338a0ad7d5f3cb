// The REST half of the contract: bearer auth, the one error shape, 401 -> sign in again,
// 429 -> wait Retry-After and try again, uploads retried on network failures.
import { signal } from "@preact/signals";

const TOKEN_KEY = "mt.token";
// Where the API lives: this server (the page is served at /app/), unless built for another origin.
export const API_BASE: string = import.meta.env.VITE_API_BASE ?? "";

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
    public details: Record<string, string[]> = {},
    public retryAfter: number | null = null,
  ) {
    super(message);
  }
  get network(): boolean {
    return this.status === 0;
  }
}

/** A line for the status bar while a request waits out a 429 (null when none does). */
export const waitNotice = signal<string | null>(null);

let unauthenticatedHandler: () => void = () => {};
export function onUnauthenticated(handler: () => void): void {
  unauthenticatedHandler = handler;
}

export const token = {
  get(): string | null {
    return localStorage.getItem(TOKEN_KEY);
  },
  set(value: string): void {
    localStorage.setItem(TOKEN_KEY, value);
  },
  clear(): void {
    localStorage.removeItem(TOKEN_KEY);
  },
};

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function absoluteUrl(path: string): string {
  if (/^https?:\/\//.test(path)) return path;
  return `${API_BASE}${path}`;
}

interface RequestOptions {
  json?: unknown;
  form?: FormData;
  query?: Record<string, string | number | undefined | null>;
  /** Wait out a 429 with a Retry-After up to this many seconds (0: never). */
  maxWait?: number;
  raw?: boolean;
  auth?: boolean;
}

async function errorFrom(response: Response): Promise<ApiError> {
  let code = "http_" + response.status;
  let message = response.statusText || "Request failed";
  let details: Record<string, string[]> = {};
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code ?? code;
      message = body.error.message ?? message;
      details = body.error.details ?? {};
    }
  } catch {
    // Not JSON (a proxy's page): keep the status.
  }
  const retryAfter = Number(response.headers.get("Retry-After"));
  return new ApiError(response.status, code, message, details, Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null);
}

export async function request<T = any>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
  const { json, form, query, maxWait = 60, raw = false, auth = true } = options;
  let url = `${API_BASE}/api/v1${path}`;
  if (query) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
    }
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  for (let attempt = 0; ; attempt++) {
    const headers: Record<string, string> = {};
    const bearer = token.get();
    if (auth && bearer) headers["Authorization"] = `Bearer ${bearer}`;
    let body: BodyInit | undefined;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (form) {
      body = form;
    }
    let response: Response;
    try {
      response = await fetch(url, { method, headers, body, cache: "no-store" });
    } catch (error) {
      throw new ApiError(0, "network", "No connection to the server.");
    }
    if (response.ok) {
      if (raw) return response as unknown as T;
      if (response.status === 204 || response.status === 202 && response.headers.get("Content-Length") === "0") {
        return undefined as T;
      }
      const text = await response.text();
      return (text ? JSON.parse(text) : undefined) as T;
    }
    const error = await errorFrom(response);
    if (response.status === 401 && auth) {
      token.clear();
      unauthenticatedHandler();
      throw error;
    }
    if (response.status === 429 && error.code === "rate_limited" && error.retryAfter !== null
        && error.retryAfter <= maxWait && attempt < 3) {
      await waitOut(error.retryAfter);
      continue;
    }
    throw error;
  }
}

async function waitOut(seconds: number): Promise<void> {
  for (let left = Math.ceil(seconds); left > 0; left--) {
    waitNotice.value = `Too many requests: trying again in ${left} s`;
    await sleep(1000);
  }
  waitNotice.value = null;
}

export const api = {
  get: <T = any>(path: string, query?: RequestOptions["query"], options: RequestOptions = {}) =>
    request<T>("GET", path, { ...options, query }),
  post: <T = any>(path: string, json?: unknown, options: RequestOptions = {}) =>
    request<T>("POST", path, { ...options, json }),
  patch: <T = any>(path: string, json?: unknown) => request<T>("PATCH", path, { json }),
  put: <T = any>(path: string, json?: unknown) => request<T>("PUT", path, { json }),
  del: <T = any>(path: string, query?: RequestOptions["query"]) => request<T>("DELETE", path, { query }),
};

/** Upload a file: a network failure or a 5xx is retried with backoff (3 tries), then thrown. */
export async function uploadAttachment(file: Blob, name: string, kind?: string): Promise<any> {
  let lastError: ApiError | null = null;
  for (let attempt = 0; attempt < 3; attempt++) {
    if (attempt > 0) await sleep(1000 * 2 ** (attempt - 1));
    const form = new FormData();
    form.append("file", file, name);
    if (kind) form.append("kind", kind);
    try {
      return await request("POST", "/attachments", { form });
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      lastError = error;
      if (!(error.network || error.status >= 500)) throw error;
    }
  }
  throw lastError;
}

/** Fetch a protected resource (attachment, avatar, export) with the bearer token, as a Blob. */
export async function fetchBlob(url: string): Promise<Blob> {
  const headers: Record<string, string> = {};
  const bearer = token.get();
  if (bearer) headers["Authorization"] = `Bearer ${bearer}`;
  let response: Response;
  try {
    response = await fetch(absoluteUrl(url), { headers });
  } catch {
    throw new ApiError(0, "network", "No connection to the server.");
  }
  if (!response.ok) {
    const error = await errorFrom(response);
    if (response.status === 401) {
      token.clear();
      unauthenticatedHandler();
    }
    throw error;
  }
  return response.blob();
}

export function uuid4(): string {
  return crypto.randomUUID();
}
