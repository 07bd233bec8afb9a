import {createServer, type IncomingHttpHeaders, type Server} from 'node:http';
import type {AddressInfo} from 'node:net';

export interface ReceivedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

export interface HttpReceiver {
  readonly url: string;
  readonly requests: ReceivedRequest[];
  /** How the next requests are answered: a status, or never. */
  answer: number | 'never';
  close(): Promise<void>;
}

/** A real HTTP server on loopback that records what it is sent, as a webhook receiver would. */
export async function startHttpReceiver(answer: number | 'never' = 200): Promise<HttpReceiver> {
  const requests: ReceivedRequest[] = [];
  const receiver: {answer: number | 'never'} = {answer};
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      requests.push({method: request.method ?? '', path: request.url ?? '', headers: request.headers, body: Buffer.concat(chunks).toString()});
      if (receiver.answer === 'never') return;
      response.writeHead(receiver.answer, {'content-type': 'text/plain'});
      response.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const {port} = server.address() as AddressInfo;
  return Object.assign(receiver, {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}
