import { useEffect, useState } from "preact/hooks";
import { ApiError, uuid4 } from "../lib/api";
import { clock } from "../lib/format";
import { me, userName } from "../lib/store";
import type { Conversation, Message } from "../lib/types";
import { claimPacket, loadPacket, money, packetErrors, packets, parseMoney, refreshWallet, sendPacket, topUp, wallet } from "../lib/wallet";
import type { Packet } from "../lib/wallet";
import { errorText, Spinner } from "./common";
import { Icon } from "./icons";

function myClaim(packet: Packet | undefined): number | null {
  const claim = packet?.claims.find((c) => c.user_id === me.value?.id);
  return claim ? claim.amount : null;
}

function canClaim(packet: Packet, conversation: Conversation): boolean {
  if (packet.status !== "open" || myClaim(packet) !== null) return false;
  // The sender may open their own packet in a group, not in a direct chat.
  return !(conversation.type === "direct" && packet.sender_id === me.value?.id);
}

function packetLine(packet: Packet | undefined, conversation: Conversation): string {
  if (!packet) return "Red packet";
  const mine = myClaim(packet);
  if (mine !== null) return `You got ${money(mine, packet.currency)}`;
  if (packet.status === "empty") return packet.sender_id === me.value?.id && conversation.type === "direct"
    ? `Opened by ${userName(packet.claims[0]?.user_id)}`
    : "All opened";
  if (packet.status === "expired") return "Expired";
  if (packet.sender_id === me.value?.id) {
    return packet.claims.length ? `${packet.claims.length}/${packet.count} opened` : "Not opened yet";
  }
  return "Tap to open";
}

/** The red packet in the message list: a red card that opens the packet. */
export function RedPacketCard(props: { message: Message; conversation: Conversation; onOpen: () => void }) {
  const info = props.message.red_packet;
  const packet = info ? packets.value.get(info.id) : undefined;
  useEffect(() => {
    if (info?.id) void loadPacket(info.id);
  }, [info?.id]);
  if (!info) return <div class="text red-packet">Red packet</div>;
  const state = packet ? (myClaim(packet) !== null ? "claimed" : packet.status) : "loading";
  return (
    <button
      type="button"
      class={`red-packet-card ${state}`}
      data-testid="red-packet"
      data-packet={info.id}
      data-state={state}
      onClick={(event) => {
        event.stopPropagation();
        props.onOpen();
      }}
    >
      <span class="red-packet-icon"><Icon name="packet" size={28} /></span>
      <span class="red-packet-body">
        <span class="red-packet-greeting">{info.greeting || "Best wishes!"}</span>
        <span class="red-packet-line" data-testid="red-packet-line">{packetLine(packet, props.conversation)}</span>
      </span>
      <span class="red-packet-footer">Red packet</span>
    </button>
  );
}

/** One packet opened: claim it, and who got how much (best luck once all are opened). */
export function RedPacketDialog(props: { packetId: string; conversation: Conversation; onClose: () => void }) {
  const packet = packets.value.get(props.packetId);
  const loadError = packetErrors.value.get(props.packetId);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    void loadPacket(props.packetId, true);
  }, [props.packetId]);

  async function claim() {
    setBusy(true);
    setError(null);
    try {
      await claimPacket(props.packetId);
      void refreshWallet().catch(() => {});
    } catch (e) {
      setError(e instanceof ApiError && e.status === 410
        ? (e.code === "red_packet_expired" ? "This red packet has expired." : "Too late: every share is taken.")
        : errorText(e));
    } finally {
      setBusy(false);
    }
  }

  const mine = myClaim(packet);
  return (
    <div class="modal-backdrop" onClick={props.onClose}>
      <div class="modal red-packet-dialog" data-testid="red-packet-dialog" onClick={(e) => e.stopPropagation()} role="dialog">
        {!packet ? (
          loadError ? <p class="error">{loadError}</p> : <Spinner />
        ) : (
          <>
            <div class="red-packet-top">
              <div class="muted small">Red packet from {userName(packet.sender_id)}</div>
              <div class="red-packet-greeting big">{packet.greeting || "Best wishes!"}</div>
              {mine !== null && <div class="red-packet-amount" data-testid="claimed-amount">{money(mine, packet.currency)}</div>}
              {canClaim(packet, props.conversation) && (
                <button class="open-packet" data-testid="claim-red-packet" disabled={busy} onClick={claim}>Open</button>
              )}
              {error && <p class="error" data-testid="claim-error">{error}</p>}
            </div>
            <div class="red-packet-summary muted small" data-testid="red-packet-summary">
              {packet.claims.length}/{packet.count} opened · {money(packet.total - packet.remaining, packet.currency)} of {money(packet.total, packet.currency)}
              {packet.status === "expired" && packet.refunded ? ` · ${money(packet.refunded, packet.currency)} returned` : ""}
            </div>
            <ul class="claim-list">
              {packet.claims.map((claim) => (
                <li key={claim.user_id} class="claim" data-testid="red-packet-claim" data-user={claim.user_id}>
                  <span class="claim-name">{userName(claim.user_id)}</span>
                  <span class="muted small">{clock(claim.claimed_at)}</span>
                  <span class="claim-amount">{money(claim.amount, packet.currency)}</span>
                  {packet.best_luck_user_id === claim.user_id && packet.count > 1 && <span class="tag">Best luck</span>}
                </li>
              ))}
            </ul>
          </>
        )}
        <button class="link" onClick={props.onClose} data-testid="close-red-packet">Close</button>
      </div>
    </div>
  );
}

/** Put money in a packet: total and, in a group, how many shares and how they split. */
export function RedPacketComposer(props: { conversation: Conversation; onClose: () => void }) {
  const group = props.conversation.type !== "direct";
  const [amount, setAmount] = useState("");
  const [count, setCount] = useState("1");
  const [mode, setMode] = useState<"random" | "fixed">("random");
  const [greeting, setGreeting] = useState("");
  const [topup, setTopup] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  // One client_id per packet being composed: a retry after a lost answer is the same packet.
  const [clientId, setClientId] = useState(uuid4);
  useEffect(() => {
    void refreshWallet().catch((e) => setError(errorText(e)));
  }, []);
  const total = parseMoney(amount);
  const shares = group ? Number(count) : 1;

  async function send(event: Event) {
    event.preventDefault();
    if (total === null || total <= 0) return setError("Enter an amount, such as 8.88.");
    if (!Number.isInteger(shares) || shares < 1) return setError("Enter how many people can open it.");
    setBusy(true);
    setError(null);
    try {
      await sendPacket(props.conversation.id, { client_id: clientId, total, count: shares, mode: group ? mode : "fixed", greeting: greeting.trim() });
      props.onClose();
    } catch (e) {
      if (e instanceof ApiError && e.status !== 0) setClientId(uuid4());
      setError(e instanceof ApiError && e.code === "insufficient_funds" ? "Not enough money in your wallet: top up first." : errorText(e));
    } finally {
      setBusy(false);
    }
  }

  async function addMoney() {
    const cents = parseMoney(topup);
    if (cents === null || cents <= 0) return setError("Enter an amount to add.");
    setBusy(true);
    setError(null);
    try {
      await topUp(cents);
      setTopup("");
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <div class="modal-backdrop" onClick={props.onClose}>
      <form class="modal red-packet-composer" data-testid="red-packet-composer" onSubmit={send} onClick={(e) => e.stopPropagation()}>
        <h3>Send a red packet</h3>
        <div class="muted small">
          Wallet: <span data-testid="wallet-balance">{wallet.value ? money(wallet.value.balance) : "…"}</span>
        </div>
        <label>
          {group ? "Total amount" : "Amount"} ({wallet.value?.currency ?? "CNY"})
          <input inputMode="decimal" placeholder="8.88" value={amount} data-testid="rp-amount" onInput={(e) => setAmount((e.target as HTMLInputElement).value)} />
        </label>
        {group && (
          <>
            <label>
              Number of packets
              <input type="number" min={1} max={100} value={count} data-testid="rp-count" onInput={(e) => setCount((e.target as HTMLInputElement).value)} />
            </label>
            <label>
              Split
              <select value={mode} data-testid="rp-mode" onChange={(e) => setMode((e.target as HTMLSelectElement).value as "random" | "fixed")}>
                <option value="random">Random amounts (lucky draw)</option>
                <option value="fixed">Equal amounts</option>
              </select>
            </label>
          </>
        )}
        <label>
          Greeting
          <input maxLength={64} placeholder="Best wishes!" value={greeting} data-testid="rp-greeting" onInput={(e) => setGreeting((e.target as HTMLInputElement).value)} />
        </label>
        {error && <p class="error" data-testid="rp-error">{error}</p>}
        <div class="row-gap">
          <button type="submit" class="primary packet-send" disabled={busy} data-testid="rp-send">
            Put {total ? money(total) : "money"} in
          </button>
          <button type="button" class="link" onClick={props.onClose}>Cancel</button>
        </div>
        <div class="row-form topup-row">
          <input inputMode="decimal" placeholder="Add money, e.g. 100" value={topup} data-testid="topup-amount" onInput={(e) => setTopup((e.target as HTMLInputElement).value)} />
          <button type="button" disabled={busy} onClick={addMoney} data-testid="topup">Top up</button>
        </div>
      </form>
    </div>
  );
}
