// A static file server for a built site, on 127.0.0.1 at a port the OS picks: the site is read
// over http, as it is once deployed (not from file://, where fetches and workers behave otherwise).
// As GitHub Pages serves a project's site: optionally under a path (/<repository>/), with anything
// outside it answered 404, a missing file inside it answered 404 with the site's own 404.html, and
// no cross-origin-isolation headers (COOP/COEP): a page that needed SharedArrayBuffer would fail here
// as it would there.
import { createServer } from "node:http";
import { readFile, stat } from "node:fs/promises";
import path from "node:path";

const CONTENT_TYPES = {
  ".html": "text/html; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".wasm": "application/wasm",
  ".onnx": "application/octet-stream",
  ".png": "image/png",
  ".gif": "image/gif",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".svg": "image/svg+xml",
  ".ico": "image/x-icon",
  ".webp": "image/webp",
  ".woff": "font/woff",
  ".woff2": "font/woff2",
  ".xml": "application/xml",
  ".gz": "application/gzip",
  ".txt": "text/plain; charset=utf-8",
};

async function isDirectory(file) {
  try {
    return (await stat(file)).isDirectory();
  } catch {
    return false;
  }
}

/** The base path as served: "/" or "/name/" (a leading and a trailing slash, no other form). */
export function normalBasePath(basePath = "/") {
  const trimmed = basePath.replace(/^\/+|\/+$/g, "");
  return trimmed === "" ? "/" : `/${trimmed}/`;
}

/** Serve `root` at `basePath` ("/" or e.g. "/fun-with-diffusion/"); resolves to { server, baseUrl }
 * once listening, baseUrl ending in the base path. A folder's address serves its index.html; a folder
 * asked for without its trailing slash is redirected, as static hosts do. */
export async function serveFolder(root, { basePath = "/" } = {}) {
  const absoluteRoot = path.resolve(root);
  const base = normalBasePath(basePath);
  const notFound = async (response, request) => {
    // GitHub Pages answers a missing file of a site with the site's 404.html, at the address asked for
    let body = null;
    try {
      body = await readFile(path.join(absoluteRoot, "404.html"));
    } catch {}
    if (body === null) {
      response.writeHead(404, { "Content-Type": "text/plain" }).end("not found");
      return;
    }
    response.writeHead(404, { "Content-Type": CONTENT_TYPES[".html"], "Content-Length": body.length });
    response.end(request.method === "HEAD" ? undefined : body);
  };
  const server = createServer(async (request, response) => {
    const { pathname } = new URL(request.url, "http://localhost");
    if (pathname + "/" === base) {
      response.writeHead(301, { Location: base }).end();
      return;
    }
    if (!pathname.startsWith(base)) {
      response.writeHead(404, { "Content-Type": "text/plain" }).end(`not found: outside ${base}`);
      return;
    }
    const relative = "/" + pathname.slice(base.length);
    let file;
    try {
      file = path.join(absoluteRoot, decodeURIComponent(relative));
    } catch {
      response.writeHead(400).end();
      return;
    }
    if (file !== absoluteRoot && !file.startsWith(absoluteRoot + path.sep)) {
      response.writeHead(403).end();
      return;
    }
    if (await isDirectory(file)) {
      if (!pathname.endsWith("/")) {
        response.writeHead(301, { Location: pathname + "/" }).end();
        return;
      }
      file = path.join(file, "index.html");
    }
    let body;
    try {
      body = await readFile(file);
    } catch {
      await notFound(response, request);
      return;
    }
    const type = CONTENT_TYPES[path.extname(file).toLowerCase()] ?? "application/octet-stream";
    response.writeHead(200, { "Content-Type": type, "Content-Length": body.length });
    response.end(request.method === "HEAD" ? undefined : body);
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  return { server, baseUrl: `http://127.0.0.1:${server.address().port}${base}` };
}
