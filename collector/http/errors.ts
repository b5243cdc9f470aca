/**
 * Internal errors as clients see them: a generic message and the request id
 * (also in the response's `x-request-id`). The error itself, with its stack,
 * paths and database messages, goes only to the log, under that id.
 */
import type { FastifyBaseLogger, FastifyReply } from 'fastify';

/** A 500: the client gets the request id, the log gets the error with its stack under that id. */
export function internalError(request: { id: string; url: string; log: FastifyBaseLogger }, reply: FastifyReply, err: unknown): FastifyReply {
  request.log.error({ err, path: request.url.split('?')[0] }, 'request failed');
  return reply.code(500).type('application/json; charset=utf-8').send({ error: 'internal error', detail: `see the collector log for request ${request.id}`, requestId: request.id });
}
