import { useState } from "preact/hooks";
import { navigate } from "../lib/router";
import { createGroup } from "../lib/store";
import { useContacts } from "./Contacts";
import { errorText, Header, Spinner } from "./common";

export function MemberPicker(props: { selected: Set<string>; onToggle: (id: string) => void; exclude?: Set<string> }) {
  const [contacts, error] = useContacts();
  if (error) return <p class="error">{error}</p>;
  if (!contacts) return <Spinner />;
  const list = contacts.filter((entry) => !props.exclude?.has(entry.user.id));
  if (!list.length) return <p class="muted">No contacts to add. Upload your address book under Contacts first.</p>;
  return (
    <ul class="picker">
      {list.map((entry) => (
        <li key={entry.user.id}>
          <label>
            <input
              type="checkbox"
              checked={props.selected.has(entry.user.id)}
              onChange={() => props.onToggle(entry.user.id)}
              data-testid="pick-member"
              data-name={entry.user.display_name}
            />
            {entry.user.display_name || "Unnamed"}
          </label>
        </li>
      ))}
    </ul>
  );
}

export function NewConversation(props: { type: "group" | "broadcast" }) {
  const [title, setTitle] = useState("");
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const toggle = (id: string) => {
    const next = new Set(selected);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setSelected(next);
  };
  async function create(event: Event) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      navigate(`/chat/${await createGroup(props.type, title.trim(), [...selected])}`, true);
    } catch (e) {
      setError(errorText(e));
      setBusy(false);
    }
  }
  return (
    <div class="pane" data-testid="new-conversation">
      <Header title={props.type === "broadcast" ? "New broadcast" : "New group"} back="/" />
      <form class="pane-body" onSubmit={create}>
        <p class="muted small">
          {props.type === "broadcast"
            ? "A broadcast is a channel: only you and the admins you name post, members read."
            : "Everyone in a group can post. People who only let contacts add them get an invitation."}
        </p>
        <label>
          Title
          <input value={title} maxLength={128} required data-testid="group-title" onInput={(e) => setTitle((e.target as HTMLInputElement).value)} />
        </label>
        <h4>Members</h4>
        <MemberPicker selected={selected} onToggle={toggle} />
        {error && <p class="error">{error}</p>}
        <button class="primary" type="submit" disabled={busy || !title.trim()} data-testid="create-group">
          Create
        </button>
      </form>
    </div>
  );
}
