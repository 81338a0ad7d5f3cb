// The WebSocket half of the contract: one socket at /ws/v1, `hello` from the last cursor,
// `ack` of what was applied, reconnect with backoff and jitter, close 4001 -> sign in again.
import { signal } from "@preact/signals";
import { API_BASE, token } from "./api";

export type SocketState = "connecting" | "online" | "offline";
export const socketState = signal<SocketState>("offline");

const CURSOR_KEY = "mt.cursor";
const PING_EVERY_MS = 20_000;
const PONG_WITHIN_MS = 10_000;
const MAX_BACKOFF_MS = 30_000;

export interface SocketHandlers {
  /** Called with every frame but pong; must apply events synchronously and in order. */
  frame(frame: any): void;
  /** After each (re)connect's hello: resend what is not acknowledged yet. */
  connected(): void;
  /** Close 4001: the token is bad, revoked or its account suspended. */
  unauthenticated(): void;
}

export function storedCursor(): string | null {
  return localStorage.getItem(CURSOR_KEY);
}

export function clearStoredCursor(): void {
  localStorage.removeItem(CURSOR_KEY);
}

function socketUrl(bearer: string): string {
  const base = API_BASE ? new URL(API_BASE) : new URL(location.href);
  const scheme = base.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${base.host}/ws/v1?token=${encodeURIComponent(bearer)}`;
}

export class Connection {
  private ws: WebSocket | null = null;
  private attempts = 0;
  private retryTimer: number | undefined;
  private pingTimer: number | undefined;
  private pongTimer: number | undefined;
  private ackTimer: number | undefined;
  private acked = "";
  private stopped = true;
  cursor: string;

  constructor(private handlers: SocketHandlers, cursor: string) {
    this.cursor = cursor;
    this.acked = cursor;
    addEventListener("online", this.onOnline);
    addEventListener("offline", this.onOffline);
  }

  start(): void {
    this.stopped = false;
    this.open();
  }

  stop(): void {
    this.stopped = true;
    removeEventListener("online", this.onOnline);
    removeEventListener("offline", this.onOffline);
    clearTimeout(this.retryTimer);
    this.teardown(1000);
    socketState.value = "offline";
  }

  get isOpen(): boolean {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN && socketState.value === "online";
  }

  send(frame: object): boolean {
    if (!this.isOpen) return false;
    this.ws!.send(JSON.stringify(frame));
    return true;
  }

  /** An event up to `cursor` is applied: remember it and acknowledge it soon (acks collapse). */
  applied(cursor: string): void {
    this.cursor = cursor;
    localStorage.setItem(CURSOR_KEY, cursor);
    if (this.ackTimer === undefined) {
      this.ackTimer = window.setTimeout(() => {
        this.ackTimer = undefined;
        this.flushAck();
      }, 250);
    }
  }

  private flushAck(): void {
    if (this.cursor && this.cursor !== this.acked && this.send({ type: "ack", cursor: this.cursor })) {
      this.acked = this.cursor;
    }
  }

  private onOnline = () => {
    if (this.stopped) return;
    this.attempts = 0;
    clearTimeout(this.retryTimer);
    if (!this.ws) this.open();
  };

  private onOffline = () => {
    // The browser knows the network is gone: do not wait for the heartbeat to notice.
    this.teardown(1000);
    socketState.value = "offline";
  };

  private open(): void {
    if (this.stopped || this.ws) return;
    const bearer = token.get();
    if (!bearer) return;
    if (!navigator.onLine) {
      socketState.value = "offline";
      return;
    }
    socketState.value = "connecting";
    const ws = new WebSocket(socketUrl(bearer));
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      ws.send(JSON.stringify({ type: "hello", cursor: this.cursor }));
      this.acked = this.cursor;
      socketState.value = "online";
      this.attempts = 0;
      this.schedulePing();
      this.handlers.connected();
    };
    ws.onmessage = (message) => {
      if (this.ws !== ws) return;
      this.schedulePing();
      let frame: any;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      if (frame.type === "pong") return;
      this.handlers.frame(frame);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.clearHeartbeat();
      socketState.value = "offline";
      if (event.code === 4001) {
        this.stopped = true;
        this.handlers.unauthenticated();
        return;
      }
      this.scheduleReconnect();
    };
    ws.onerror = () => {
      // onclose follows and decides.
    };
  }

  private teardown(code: number): void {
    const ws = this.ws;
    this.ws = null;
    this.clearHeartbeat();
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(code);
      } catch {
        // already closed
      }
    }
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    // Exponential backoff with full jitter, so a server restart is not met by every tab at once.
    const ceiling = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempts);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.attempts++;
    clearTimeout(this.retryTimer);
    this.retryTimer = window.setTimeout(() => this.open(), delay);
  }

  private schedulePing(): void {
    this.clearHeartbeat();
    this.pingTimer = window.setTimeout(() => {
      if (!this.send({ type: "ping" })) return;
      this.pongTimer = window.setTimeout(() => {
        // No frame at all since the ping: the connection is dead without a close (a lost network).
        this.teardown(4000);
        socketState.value = "offline";
        this.scheduleReconnect();
      }, PONG_WITHIN_MS);
    }, PING_EVERY_MS);
  }

  private clearHeartbeat(): void {
    clearTimeout(this.pingTimer);
    clearTimeout(this.pongTimer);
  }
}
