// A page of the test's own on another origin than Faultline's, as an application serves it:
// `files` maps a path to [content type, body]; the browser's /favicon.ico gets an empty 204.
// Resolves to the server once it listens on 127.0.0.1 (its address() has the port).
import { createServer } from "node:http";

export async function serveFiles(files) {
  const site = createServer((req, res) => {
    const file = files[req.url];
    if (!file) {
      res.writeHead(req.url === "/favicon.ico" ? 204 : 404).end();
      return;
    }
    res.writeHead(200, { "Content-Type": file[0] }).end(file[1]);
  });
  await new Promise((resolve) => site.listen(0, "127.0.0.1", resolve));
  return site;
}
