// The wallet and red packets (红包): balances and packets as the server reports them, kept fresh by
// the `wallet.updated`, `red_packet.claimed` and `red_packet.refunded` events. Money is integer cents.
import { signal } from "@preact/signals";
import { api, ApiError, uuid4 } from "./api";
import { addEventHook, addResetHook, ensureUser } from "./store";
import type { StreamEvent } from "./types";

export interface Wallet {
  balance: number;
  currency: string;
}

export interface PacketClaim {
  user_id: string;
  amount: number;
  claimed_at: string;
}

export interface Packet {
  id: string;
  sender_id: string;
  conversation_id?: string;
  total: number;
  count: number;
  mode?: string;
  greeting?: string;
  currency?: string;
  remaining: number;
  remaining_count?: number;
  status: "open" | "empty" | "expired";
  claims: PacketClaim[];
  best_luck_user_id: string | null;
  refunded?: number | null;
}

export interface StatementLine {
  id: string;
  kind: string;
  amount: number;
  currency: string;
  red_packet_id: string | null;
  topup_id: string | null;
  created_at: string;
}

export const wallet = signal<Wallet | null>(null);
export const packets = signal<Map<string, Packet>>(new Map());
/** Packets that are gone for this viewer (404) or could not be read. */
export const packetErrors = signal<Map<string, string>>(new Map());

const SYMBOLS: Record<string, string> = { CNY: "¥", USD: "$", EUR: "€", GBP: "£", JPY: "¥" };

/** 888 cents -> "¥8.88". */
export function money(cents: number, currency?: string): string {
  const code = currency ?? wallet.value?.currency ?? "CNY";
  const sign = cents < 0 ? "-" : "";
  const symbol = SYMBOLS[code] ?? `${code} `;
  return `${sign}${symbol}${(Math.abs(cents) / 100).toFixed(2)}`;
}

/** "8.88" or "8" -> 888 cents (null when it is not an amount). */
export function parseMoney(text: string): number | null {
  const match = /^\s*(\d{1,7})(?:[.,](\d{1,2}))?\s*$/.exec(text);
  if (!match) return null;
  return Number(match[1]) * 100 + Number((match[2] ?? "0").padEnd(2, "0"));
}

export async function refreshWallet(): Promise<Wallet> {
  const body = await api.get<Wallet>("/wallet");
  wallet.value = body;
  return body;
}

export async function topUp(amount: number): Promise<void> {
  const topup = await api.post<{ status: string; failure_reason: string | null }>("/wallet/topups", {
    client_id: uuid4(),
    amount,
  });
  if (topup.status === "failed") throw new Error(topup.failure_reason || "The payment failed.");
  await refreshWallet();
  if (topup.status === "pending") throw new Error("The payment is waiting for the provider to confirm it.");
}

export async function walletStatement(before?: string): Promise<{ transactions: StatementLine[]; cursor: string | null; has_more: boolean }> {
  return api.get("/wallet/transactions", { before, limit: 50 });
}

export interface PacketRequest {
  client_id: string;
  total: number;
  count: number;
  mode: "random" | "fixed";
  greeting: string;
}

/** Send a red packet; the same `client_id` on a retry is the same packet (never debited twice). */
export async function sendPacket(conversationId: string, request: PacketRequest): Promise<Packet> {
  const packet = await api.post<Packet>(`/conversations/${conversationId}/red-packets`, request);
  remember(packet);
  void refreshWallet().catch(() => {});
  return packet;
}

function remember(packet: Packet): void {
  const next = new Map(packets.value);
  next.set(packet.id, packet);
  packets.value = next;
  for (const claim of packet.claims) void ensureUser(claim.user_id);
}

const loading = new Map<string, Promise<void>>();
export function loadPacket(id: string, force = false): Promise<void> {
  if (!force && packets.value.has(id)) return Promise.resolve();
  let pending = loading.get(id);
  if (pending && !force) return pending;
  pending = api
    .get<Packet>(`/red-packets/${id}`)
    .then(remember)
    .catch((error) => {
      const next = new Map(packetErrors.value);
      next.set(id, error instanceof ApiError ? error.message : String(error));
      packetErrors.value = next;
    })
    .finally(() => loading.delete(id));
  loading.set(id, pending);
  return pending;
}

/** Open a packet: the amount (the same on a repeat), then the packet re-read with the claim in it. */
export async function claimPacket(id: string): Promise<number> {
  try {
    const { amount } = await api.post<{ amount: number }>(`/red-packets/${id}/claim`);
    return amount;
  } finally {
    await loadPacket(id, true);
  }
}

function onEvent(event: StreamEvent): void {
  const data = event.data ?? {};
  switch (event.type) {
    case "wallet.updated":
      if (typeof data.balance === "number") wallet.value = { balance: data.balance, currency: data.currency ?? wallet.value?.currency ?? "CNY" };
      break;
    case "red_packet.claimed":
    case "red_packet.refunded":
      if (data.red_packet_id && packets.value.has(data.red_packet_id)) void loadPacket(data.red_packet_id, true);
      break;
    default:
      break;
  }
}

addEventHook(onEvent);
addResetHook(() => {
  wallet.value = null;
  packets.value = new Map();
  packetErrors.value = new Map();
});
