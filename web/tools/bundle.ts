/**
 * Builds the single-page app (design §17) into the Python package, deterministically:
 * esbuild-wasm (esbuild compiled to WebAssembly: no platform binary to download) bundles
 * src/app/main.ts and app/style.css, minified, without source maps or build paths; each
 * asset is named by its content hash (`assets/app-<16 hex>.js|css`); app/index.html gets the hashed names and SRI hashes
 * on its one script and one style tag; manifest.json lists every file's SHA-256 and the
 * bundle hash (SHA-256 over the sorted "name hash" lines), which `opseal-server status`
 * publishes and `opseal web verify` compares.
 *
 * Usage: node build/tools/bundle.js [--out DIR]   (default: ../server/web-app)
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild-wasm";

const WEB = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const SCRIPT_TAG = '<script type="module" src="app.js"></script>';
const STYLE_TAG = '<link rel="stylesheet" href="app.css">';

function sha256(data: Uint8Array, encoding: "hex" | "base64"): string {
  return createHash("sha256").update(data).digest(encoding);
}

async function bundle(entry: string, loader: "ts" | "css"): Promise<Uint8Array> {
  const result = await esbuild.build({
    entryPoints: [join(WEB, entry)],
    absWorkingDir: WEB,
    bundle: true,
    ...(loader === "ts" ? { format: "esm" as const } : {}),
    platform: "browser",
    target: ["es2022"],
    minify: true,
    legalComments: "none",
    charset: "utf8",
    sourcemap: false,
    write: false,
    logLevel: "error",
  });
  const files = result.outputFiles ?? [];
  const [file] = files;
  if (!file || files.length !== 1) throw new Error(`${entry}: expected one output file`);
  return file.contents;
}

function named(prefix: string, ext: string, data: Uint8Array): string {
  return `assets/${prefix}-${sha256(data, "hex").slice(0, 16)}.${ext}`;
}

function page(template: string, script: string, js: Uint8Array, style: string, css: Uint8Array): string {
  for (const tag of [SCRIPT_TAG, STYLE_TAG]) {
    if (template.split(tag).length !== 2) throw new Error(`app/index.html must hold exactly one ${tag}`);
  }
  if (/<script(?![^>]*\bsrc=)|<style|\son[a-z]+=/i.test(template)) {
    throw new Error("app/index.html must hold no inline script, style or event handler (the CSP refuses them)");
  }
  const sri = (data: Uint8Array) => `sha256-${sha256(data, "base64")}`;
  return template
    .replace(SCRIPT_TAG, `<script type="module" src="${script}" integrity="${sri(js)}"></script>`)
    .replace(STYLE_TAG, `<link rel="stylesheet" href="${style}" integrity="${sri(css)}">`);
}

export function manifest(files: Map<string, Uint8Array>): string {
  const hashes = [...files].map(([name, data]) => [name, sha256(data, "hex")] as const).sort(([a], [b]) => (a < b ? -1 : 1));
  const lines = hashes.map(([name, hash]) => `${name} ${hash}\n`).join("");
  const bundleHash = sha256(new TextEncoder().encode(lines), "hex");
  return `${JSON.stringify({ format: 1, bundle_hash: bundleHash, files: Object.fromEntries(hashes) }, null, 2)}\n`;
}

async function main(): Promise<void> {
  const i = process.argv.indexOf("--out");
  const out = i > 0 && process.argv[i + 1] ? resolve(process.argv[i + 1]!) : resolve(WEB, "..", "server", "web-app");
  const js = await bundle("src/app/main.ts", "ts");
  const css = await bundle("app/style.css", "css");
  const script = named("app", "js", js);
  const style = named("app", "css", css);
  const html = page(readFileSync(join(WEB, "app", "index.html"), "utf8"), script, js, style, css);
  const files = new Map<string, Uint8Array>([[script, js], [style, css], ["index.html", new TextEncoder().encode(html)]]);
  mkdirSync(out, { recursive: true });
  for (const old of readdirSync(out)) rmSync(join(out, old), { recursive: true });
  mkdirSync(join(out, "assets"));
  for (const [name, data] of files) writeFileSync(join(out, name), data);
  writeFileSync(join(out, "manifest.json"), manifest(files));
  await esbuild.stop();
  process.stdout.write(`${out}: ${JSON.parse(manifest(files)).bundle_hash}\n`);
}

await main();
