/** The app's screens. */
export async function start(doc: Document): Promise<void> {
  const main = doc.getElementById("main");
  if (!main) throw new Error("the page has no main element");
  main.textContent = "";
}
