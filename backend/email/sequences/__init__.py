"""Follow-up sequences: a lead enrolled by a trigger gets each step's e-mail in turn, until a
reply, an unsubscribe, a bounce, a spam report, the conversion or an operator stops it."""
