/** One Pub/Sub channel (Redis): its messages reach every replica subscribed to it. */
export interface Channel {
  publish(message: string): Promise<void>;
  /** Calls `onMessage` for each message published by any replica; resolves to a stop function. */
  subscribe(onMessage: (message: string) => void): Promise<() => Promise<void>>;
}
