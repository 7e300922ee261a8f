/**
 * Posts a rollout's rollback or promotion to the webhook of the policy file, as Slack-compatible JSON: `text`
 * for people, `keel` for machines. Bounded in time; a failure is the caller's to log (the decision stands).
 */
export async function postRolloutWebhook(url: string, text: string, details: unknown): Promise<void> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ text, keel: details }),
    signal: AbortSignal.timeout(5000),
  });
  if (!response.ok) throw new Error(`the rollout webhook answered ${response.status}`);
}
