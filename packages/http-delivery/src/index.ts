import type {DeliveryOptions} from 'synapse-backup/plugin-api';

/** An error the core may retry once: nothing was accepted (no connection, or the receiver asked to try later). */
export function deliveryFailure(message: string, retryable: boolean): Error {
  return Object.assign(new Error(message), {retryable});
}

/** A variable that must hold an http(s) URL; the message names the variable, never its value. */
export function parseHttpUrl(variable: string, raw: string | undefined): URL {
  let url: URL;
  try {
    url = new URL((raw ?? '').trim());
  } catch {
    throw new Error(`${variable} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`${variable} must be an http:// or https:// URL, not ${url.protocol}`);
  return url;
}

/**
 * One request whose outcome is a delivery or a reason. The URL never appears in a message (it may
 * carry a token), redirects are refused (they could lead a signed body elsewhere), and a 429 or
 * 5xx answer or a failed connection may be retried.
 */
export async function sendRequest(url: URL, init: RequestInit, options: DeliveryOptions): Promise<void> {
  let response: Response;
  try {
    response = await fetch(url, {...init, signal: options.signal, redirect: 'error'});
  } catch (error) {
    if (options.signal.aborted) throw deliveryFailure('cancelled: no answer in time', false);
    const cause = (error as {cause?: {code?: string; message?: string}}).cause;
    throw deliveryFailure(`request failed: ${cause?.code ?? cause?.message ?? (error as Error).message}`, true);
  }
  await response.body?.cancel();
  if (response.status >= 200 && response.status < 300) return;
  throw deliveryFailure(`the receiver answered HTTP ${response.status}`, response.status === 429 || response.status >= 500);
}
