import { render } from "preact";
import { App } from "./App";
import { Store } from "./store";
import "./styles.css";

const store = new Store();
(globalThis as unknown as { chat4all: Store }).chat4all = store;  // for the console and the browser tests
render(<App store={store} />, document.getElementById("app")!);
