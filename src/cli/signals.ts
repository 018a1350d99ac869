/**
 * Resolves after SIGTERM or SIGINT has been received and `stop` has finished (graceful drain).
 * A second signal while draining exits at once.
 */
export function runUntilSignal(stop: () => Promise<void>): Promise<void> {
  return new Promise((resolve, reject) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        process.stderr.write(`portcullis: second ${signal}, exiting now\n`);
        process.exit(1);
      }
      stopping = true;
      stop().then(() => {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
        resolve();
      }, reject);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}
