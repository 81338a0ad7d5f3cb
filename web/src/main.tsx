import { render } from "preact";
import "./styles.css";
import { App } from "./ui/App";
import { boot } from "./lib/store";

render(<App />, document.getElementById("root")!);
void boot();
