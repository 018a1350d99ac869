import { test } from 'vitest';
import { connectV1Client, connectV2Client, startV1Server, startV2Server } from '../fixtures/peers.js';

for (const response of ['json', 'sse', 'auto'] as const) {
  test(`explore v2 ${response}`, async () => {
    const peer = await startV2Server({ response });
    const client = await connectV2Client(peer.url);
    console.log('negotiated', client.getNegotiatedProtocolVersion());
    await client.listTools();
    await client.callTool({ name: 'echo', arguments: { text: 'hi' } });
    const prog: number[] = [];
    const r = await client.callTool({ name: 'slow_progress', arguments: {} }, { onprogress: (p) => { prog.push(Date.now()); console.log('progress', p); } });
    console.log('result', JSON.stringify(r), prog.length);
    for (const q of peer.requests) console.log(response, q.method, JSON.stringify(q.headers), JSON.stringify(q.body));
    await client.close();
    await peer.close();
  });
}
for (const response of ['json', 'sse'] as const) {
  test(`explore v1 ${response}`, async () => {
    const peer = await startV1Server({ response });
    const client = await connectV1Client(peer.url);
    await client.listTools();
    await client.callTool({ name: 'echo', arguments: { text: 'hi' } });
    const r = await client.callTool({ name: 'slow_progress', arguments: {} }, undefined, { onprogress: (p) => console.log('progress', p) });
    console.log('result', JSON.stringify(r));
    for (const q of peer.requests) console.log(response, q.method, JSON.stringify(q.headers), JSON.stringify(q.body));
    await client.close();
    await peer.close();
  });
}
test('explore v2 legacy client against v1', async () => {
    const peer = await startV1Server({ response: 'sse' });
    const client = await connectV2Client(peer.url, { protocol: 'legacy' });
    await client.callTool({ name: 'echo', arguments: { text: 'hi' } });
    for (const q of peer.requests) console.log('v2legacy', q.method, JSON.stringify(q.headers), JSON.stringify(q.body));
    await client.close();
    await peer.close();
});
