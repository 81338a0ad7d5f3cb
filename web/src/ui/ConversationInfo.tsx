import { useEffect, useState } from "preact/hooks";
import { api } from "../lib/api";
import { navigate } from "../lib/router";
import { conversations, conversationTitle, fetchConversation, me, myRole, peerOf, showToast, userName } from "../lib/store";
import { Avatar, errorText, Header, Spinner } from "./common";
import { MemberPicker } from "./NewConversation";

const FOREVER = "2100-01-01T00:00:00.000Z";

export function ConversationInfo(props: { id: string }) {
  const conversation = conversations.value.get(props.id);
  const [title, setTitle] = useState(conversation?.title ?? "");
  const [adding, setAdding] = useState(false);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [blocked, setBlocked] = useState<boolean | null>(null);
  const [error, setError] = useState<string | null>(null);
  const peer = conversation ? peerOf(conversation) : null;

  useEffect(() => {
    void fetchConversation(props.id);
  }, [props.id]);
  useEffect(() => {
    if (!peer || peer === me.value?.id) return;
    api
      .get<Array<{ user: { id: string } }>>("/blocks")
      .then((list) => setBlocked(list.some((entry) => entry.user.id === peer)))
      .catch(() => setBlocked(null));
  }, [peer]);

  if (!conversation) {
    return (
      <div class="pane">
        <Header title="Details" back={`/chat/${props.id}`} />
        <Spinner />
      </div>
    );
  }
  const role = myRole(conversation);
  const isAdmin = role === "owner" || role === "admin";
  const muted = conversation.muted_until !== null && Date.parse(conversation.muted_until) > Date.now();

  async function run(action: () => Promise<unknown>, done?: string) {
    setError(null);
    try {
      await action();
      await fetchConversation(props.id);
      if (done) showToast(done);
    } catch (e) {
      setError(errorText(e));
    }
  }

  const memberIds = new Set(conversation.members.map((m) => m.user_id));
  return (
    <div class="pane" data-testid="conversation-info">
      <Header title={conversationTitle(conversation)} subtitle={conversation.type} back={`/chat/${props.id}`} />
      <div class="pane-body">
        {conversation.type !== "direct" && isAdmin && (
          <form class="row-form" onSubmit={(e) => { e.preventDefault(); void run(() => api.patch(`/conversations/${props.id}`, { title }), "Renamed"); }}>
            <input value={title} maxLength={128} onInput={(e) => setTitle((e.target as HTMLInputElement).value)} />
            <button class="primary small" type="submit" disabled={!title.trim()}>Rename</button>
          </form>
        )}
        <label class="switch">
          <input
            type="checkbox"
            checked={muted}
            onChange={() => run(() => api.put(`/conversations/${props.id}/mute`, { until: muted ? null : FOREVER }))}
          />
          Mute notifications
        </label>
        {conversation.type === "direct" && peer && peer !== me.value?.id && (
          <button data-testid="peer-moments" onClick={() => navigate(`/moments/user/${peer}`)}>
            {userName(peer)}'s moments
          </button>
        )}{" "}
        {conversation.type === "direct" && peer && peer !== me.value?.id && blocked !== null && (
          <button
            class={blocked ? "" : "danger"}
            data-testid="toggle-block"
            onClick={() =>
              run(async () => {
                if (blocked) await api.del(`/blocks/${peer}`);
                else await api.post("/blocks", { user_id: peer });
                setBlocked(!blocked);
              }, blocked ? "Unblocked" : "Blocked")
            }
          >
            {blocked ? `Unblock ${userName(peer)}` : `Block ${userName(peer)}`}
          </button>
        )}
        {conversation.type !== "direct" && (
          <>
            <h4>
              {conversation.type === "broadcast" ? "Admins" : "Members"} ({conversation.member_count ?? conversation.members.length} in all)
            </h4>
            <ul class="member-list">
              {conversation.members.map((member) => (
                <li key={member.user_id} class="contact">
                  <Avatar userId={member.user_id} name={userName(member.user_id)} />
                  <div class="contact-body">
                    <div class="contact-name">{userName(member.user_id)}</div>
                    <div class="muted small">{member.role}</div>
                  </div>
                  {isAdmin && member.user_id !== me.value?.id && member.role !== "owner" && (
                    <button class="link" onClick={() => run(() => api.del(`/conversations/${props.id}/members/${member.user_id}`), "Removed")}>
                      Remove
                    </button>
                  )}
                </li>
              ))}
            </ul>
            {isAdmin &&
              (adding ? (
                <div class="card">
                  <MemberPicker
                    selected={selected}
                    exclude={memberIds}
                    onToggle={(id) => {
                      const next = new Set(selected);
                      if (next.has(id)) next.delete(id);
                      else next.add(id);
                      setSelected(next);
                    }}
                  />
                  <button
                    class="primary"
                    disabled={!selected.size}
                    onClick={() =>
                      run(async () => {
                        await api.post(`/conversations/${props.id}/members`, { user_ids: [...selected] });
                        setAdding(false);
                        setSelected(new Set());
                      }, "Added")
                    }
                  >
                    Add {selected.size || ""}
                  </button>
                </div>
              ) : (
                <button onClick={() => setAdding(true)} data-testid="add-members">Add members</button>
              ))}
            <button
              class="danger"
              data-testid="leave"
              onClick={() =>
                confirm("Leave this conversation?") &&
                run(async () => {
                  await api.del(`/conversations/${props.id}/members/${me.value!.id}`);
                  navigate("/", true);
                })
              }
            >
              Leave
            </button>
          </>
        )}
        {error && <p class="error">{error}</p>}
      </div>
    </div>
  );
}
