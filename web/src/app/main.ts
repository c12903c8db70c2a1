/** The single-page app's entry point (design §17): plain DOM, everything verified here. */
import { start } from "./ui.js";

start(document).catch((error: unknown) => {
  const status = document.getElementById("status");
  if (status) status.textContent = `OpSeal could not start: ${error instanceof Error ? error.message : String(error)}`;
});
