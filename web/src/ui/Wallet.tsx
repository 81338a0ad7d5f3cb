import { useEffect, useState } from "preact/hooks";
import { shortDate } from "../lib/format";
import { money, parseMoney, refreshWallet, topUp, wallet, walletStatement } from "../lib/wallet";
import type { StatementLine } from "../lib/wallet";
import { errorText, Header, Spinner } from "./common";

const KINDS: Record<string, string> = {
  topup: "Top-up",
  red_packet_send: "Red packet sent",
  red_packet_claim: "Red packet received",
  red_packet_refund: "Red packet returned",
};

export function WalletPage() {
  const [lines, setLines] = useState<StatementLine[] | null>(null);
  const [cursor, setCursor] = useState<string | null>(null);
  const [amount, setAmount] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  async function reload() {
    try {
      await refreshWallet();
      const page = await walletStatement();
      setLines(page.transactions);
      setCursor(page.has_more ? page.cursor : null);
    } catch (e) {
      setError(errorText(e));
    }
  }
  // Re-read the statement whenever the balance moves (a `wallet.updated` event).
  useEffect(() => {
    void reload();
  }, [wallet.value?.balance]);

  async function more() {
    if (!cursor) return;
    try {
      const page = await walletStatement(cursor);
      setLines([...(lines ?? []), ...page.transactions]);
      setCursor(page.has_more ? page.cursor : null);
    } catch (e) {
      setError(errorText(e));
    }
  }

  async function add(event: Event) {
    event.preventDefault();
    const cents = parseMoney(amount);
    if (cents === null || cents <= 0) return setError("Enter an amount, such as 100.");
    setBusy(true);
    setError(null);
    try {
      await topUp(cents);
      setAmount("");
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <div class="pane" data-testid="wallet">
      <Header title="Wallet" back="/settings" />
      <div class="pane-body">
        <section class="card wallet-card">
          <div class="muted small">Balance</div>
          <div class="wallet-balance" data-testid="wallet-balance">{wallet.value ? money(wallet.value.balance) : "…"}</div>
          <form class="row-form" onSubmit={add}>
            <input inputMode="decimal" placeholder="Amount to add, e.g. 100" value={amount} data-testid="topup-amount"
              onInput={(e) => setAmount((e.target as HTMLInputElement).value)} />
            <button class="primary" type="submit" disabled={busy} data-testid="topup">Top up</button>
          </form>
          {error && <p class="error" data-testid="wallet-error">{error}</p>}
        </section>
        <section class="card">
          <h3>Transactions</h3>
          {lines === null ? (
            <Spinner />
          ) : lines.length === 0 ? (
            <p class="muted">Nothing yet.</p>
          ) : (
            <ul class="statement">
              {lines.map((line) => (
                <li key={line.id} class="statement-line" data-testid="transaction" data-kind={line.kind}>
                  <span>{KINDS[line.kind] ?? line.kind}</span>
                  <span class="muted small">{shortDate(line.created_at)}</span>
                  <span class={`amount${line.amount < 0 ? " out" : " in"}`}>{line.amount > 0 ? "+" : ""}{money(line.amount, line.currency)}</span>
                </li>
              ))}
            </ul>
          )}
          {cursor && <button class="link more" onClick={more}>Older transactions</button>}
        </section>
      </div>
    </div>
  );
}
