import { waitNotice } from "../lib/api";
import { match, navigate, path } from "../lib/router";
import { socketState } from "../lib/socket";
import { announcement, boot, bootError, booted, me, signedIn, signOut, toast } from "../lib/store";
import { CallScreen } from "./Call";
import { Chat } from "./Chat";
import { Spinner } from "./common";
import { Contacts } from "./Contacts";
import { ConversationInfo } from "./ConversationInfo";
import { Devices } from "./Devices";
import { MomentsPage, PersonMoments } from "./Moments";
import { ExportPage } from "./Export";
import { NewConversation } from "./NewConversation";
import { Settings } from "./Settings";
import { Sidebar } from "./Sidebar";
import { SignIn } from "./SignIn";
import { WalletPage } from "./Wallet";
import { Welcome } from "./Welcome";

function Main(props: { route: string }) {
  const route = props.route;
  let params: Record<string, string> | null;
  if ((params = match("/chat/:id", route))) return <Chat key={params.id} id={params.id} />;
  if ((params = match("/chat/:id/info", route))) return <ConversationInfo key={params.id} id={params.id} />;
  if ((params = match("/new/:type", route))) return <NewConversation type={params.type === "broadcast" ? "broadcast" : "group"} />;
  if (route === "/contacts") return <Contacts />;
  if (route === "/settings") return <Settings />;
  if (route === "/devices") return <Devices />;
  if (route === "/export") return <ExportPage />;
  if (route === "/wallet") return <WalletPage />;
  if (route === "/moments") return <MomentsPage />;
  if ((params = match("/moments/user/:id", route))) return <PersonMoments key={params.id} userId={params.id} />;
  return <Welcome />;
}

export function App() {
  if (!signedIn.value) {
    if (path.value !== "/") navigate("/", true);
    return <SignIn />;
  }
  if (!booted.value || !me.value) {
    return (
      <div class="splash">
        {bootError.value ? (
          <div class="welcome" data-testid="boot-error">
            <p>Cannot reach the server: {bootError.value}</p>
            <p class="muted small">Trying again…</p>
            <button onClick={() => boot()}>Try now</button> <button class="link" onClick={() => signOut()}>Sign out</button>
          </div>
        ) : (
          <Spinner />
        )}
      </div>
    );
  }
  const route = path.value;
  const inMain = route !== "/";
  return (
    <div class={`shell${inMain ? " in-main" : ""}`} data-socket={socketState.value}>
      <Sidebar />
      <main class="main-pane">
        {socketState.value !== "online" && (
          <div class="banner offline" data-testid="connection-banner">
            {socketState.value === "connecting" ? "Connecting…" : "Offline: messages will be sent when you are back."}
          </div>
        )}
        {waitNotice.value && <div class="banner" data-testid="wait-banner">{waitNotice.value}</div>}
        {announcement.value && (
          <div class="banner announcement" data-testid="announcement">
            {announcement.value}
            <button class="link" onClick={() => (announcement.value = null)}>Dismiss</button>
          </div>
        )}
        <Main route={route} />
      </main>
      <CallScreen />
      {toast.value && <div class="toast" data-testid="toast">{toast.value}</div>}
    </div>
  );
}
