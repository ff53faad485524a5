import { Column, Entity, PrimaryColumn } from 'typeorm';

/**
 * A stored API key. Only the SHA-256 of the key is kept; `prefix` (the first 8 hex digits of the
 * id, also visible inside the key) finds the row, the hash is then compared in constant time.
 */
@Entity({ schema: 'auth', name: 'api_keys' })
export class ApiKey {
  @PrimaryColumn({ type: 'uuid' }) id!: string;
  @Column({ name: 'tenant_id', type: 'text' }) tenantId!: string;
  @Column({ type: 'text' }) name!: string;
  @Column({ type: 'text', unique: true }) prefix!: string;
  @Column({ name: 'key_hash', type: 'bytea' }) keyHash!: Buffer;
  @Column({ type: 'text' }) role!: string;
  /** null: every permission of the role. */
  @Column({ type: 'text', array: true, nullable: true }) scopes!: string[] | null;
  @Column({ name: 'created_by', type: 'text' }) createdBy!: string;
  @Column({ name: 'created_at', type: 'timestamptz', default: () => 'now()' }) createdAt!: Date;
  @Column({ name: 'expires_at', type: 'timestamptz', nullable: true }) expiresAt!: Date | null;
  @Column({ name: 'last_used_at', type: 'timestamptz', nullable: true }) lastUsedAt!: Date | null;
  @Column({ name: 'revoked_at', type: 'timestamptz', nullable: true }) revokedAt!: Date | null;
  @Column({ name: 'revoked_by', type: 'text', nullable: true }) revokedBy!: string | null;
}
