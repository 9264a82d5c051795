// oauth2-mock-server through its library API, for what its command line cannot set (tests/test_oauth2.py):
// the one client it grants tokens to, the tokens' lifetime, and a jti claim (two tokens issued in the same second
// differ, as a real server's do).
//   node oauth2_server.mjs PORT CLIENT_ID CLIENT_SECRET TTL_SECONDS
// The client authenticates with HTTP basic auth or with client_id/client_secret in the form; any other client
// gets 401 {"error": "invalid_client"}. Every answer of the token endpoint is logged as one line:
//   token 200 <client id>   or   token 401 <client id>
import { randomUUID } from "node:crypto";
import { OAuth2Server } from "oauth2-mock-server";

const [port, clientId, clientSecret, ttl] = process.argv.slice(2);
const lifetime = Number(ttl);

function client(req) {
  const header = req.headers.authorization ?? "";
  if (header.startsWith("Basic ")) {
    const [id, ...secret] = Buffer.from(header.slice(6), "base64").toString("utf8").split(":");
    return [decodeURIComponent(id), decodeURIComponent(secret.join(":"))];
  }
  return [req.body?.client_id, req.body?.client_secret];
}

const server = new OAuth2Server();
await server.issuer.keys.generate("RS256");
server.service.on("beforeTokenSigning", (token) => {
  token.payload.exp = token.payload.iat + lifetime;
  token.payload.jti = randomUUID();
});
server.service.on("beforeResponse", (response, req) => {
  const [id, secret] = client(req);
  if (id !== clientId || secret !== clientSecret) {
    response.statusCode = 401;
    response.body = { error: "invalid_client", error_description: "client authentication failed" };
  } else {
    response.body.expires_in = lifetime;
  }
  console.log(`token ${response.statusCode} ${id}`);
});
await server.start(Number(port), "127.0.0.1");
console.log(`listening on ${server.issuer.url}`);
